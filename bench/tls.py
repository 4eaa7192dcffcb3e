"""TLS transports: full and resumed handshakes/s, bulk MB/s, against stdlib ``ssl``.

Stacks: seproxy's pyOpenSSL and M2Crypto transports, and a baseline built on the
stdlib ``ssl`` module with the same certificates, the same DISET framing
(``FrameParser`` on receive, header + payload ``sendall`` on send) and the same
server policy (client certificate required, proxies allowed).

* handshake: connect (TCP + TLS, client presents an RFC 3820 proxy), one 4-byte
  frame echoed, close.  *full*: no session offered; *resumed*: the client offers
  the session of its previous connection (seproxy: its session cache; stdlib:
  ``SSLSocket.session``).
* bulk: one connection sends ``--bulk-mb`` frames of 1 MiB, the server reads and
  drops them and answers a final ``END`` frame; MB/s = MiB sent / elapsed.

Each server runs in its own process (no GIL sharing with the client); its accept loop
hands connections to 4 worker threads, as a seproxy service does.

Usage: ``python bench/tls.py [--seconds S] [--bulk-mb N] [--write]``; ``--write``
replaces the ``## TLS`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import queue
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from OpenSSL import SSL

from bench.report import load_note, write_section
from seproxy.config import Config
from seproxy.errors import PeerClosed, SeproxyError
from seproxy.rpc import transport
from seproxy.rpc.transport import tlsbase
from seproxy.rpc.wire.framing import Frame, FrameParser, frame_header
from seproxy.security.pki import DevPKI

MiB = 1024 * 1024
STACKS = ["dip", "stdlib", "pyopenssl", "m2crypto"]


def make_pki(directory: Path) -> dict[str, str]:
    dev = DevPKI(directory).ensure(hostnames=("localhost",))
    proxy = dev.make_proxy(directory / "proxy.pem", group="dirac_user")
    return {"ca_dir": str(dev.ca_dir), "cert": str(dev.host_cert), "key": str(dev.host_key),
            "proxy": str(proxy)}


def seproxy_cfg(pki: dict[str, str], backend: str) -> Config:
    return Config.from_text(
        "DIRAC\n{\n VirtualOrganization = dirac\n Security\n {\n"
        f"  CertFile = {pki['cert']}\n  KeyFile = {pki['key']}\n  CALocation = {pki['ca_dir']}\n"
        f"  TLSBackend = {backend}\n  CheckCRLs = no\n }}\n}}\n", use_default=False)


# -- servers (in a child process) ---------------------------------------------------------------
def _answer(conn) -> None:
    """Echo small frames, drop bulk ones, answer ``END`` with ``OK``; until the peer goes."""
    while True:
        frame = conn.receive_frame()
        if frame == b"END" or len(frame) < 64:
            conn.send_frame(b"OK" if frame == b"END" else frame)


def _serve_seproxy(conn: transport.Transport) -> None:
    try:
        conn.handshake(10)
        conn.peer_credentials()  # what a service does for every connection
        _answer(conn)
    except (PeerClosed, SeproxyError):
        pass
    finally:
        conn.close()


class StdlibConn:
    """The baseline: stdlib ssl with the same framing work as a seproxy transport."""

    def __init__(self, tls: ssl.SSLSocket) -> None:
        self.tls = tls
        self.parser = FrameParser()
        self.buf = bytearray(256 * 1024)
        self.view = memoryview(self.buf)

    def send_frame(self, payload: bytes | memoryview) -> None:
        self.tls.sendall(frame_header(len(payload)) + bytes(payload) if len(payload) < 65536
                         else frame_header(len(payload)))
        if len(payload) >= 65536:
            self.tls.sendall(payload)

    def receive_frame(self) -> bytes:
        while True:
            event = self.parser.next_event()
            if isinstance(event, Frame):
                return event.payload
            count = self.tls.recv_into(self.view)
            if not count:
                raise PeerClosed("Peer closed connection")
            self.parser.feed(self.view[:count])


def stdlib_context(pki: dict[str, str], server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(capath=pki["ca_dir"])
    ctx.verify_flags |= ssl.VERIFY_ALLOW_PROXY_CERTS
    if server:
        ctx.load_cert_chain(pki["cert"], pki["key"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.load_cert_chain(pki["proxy"])
    return ctx


def _serve_stdlib(ctx: ssl.SSLContext, raw: socket.socket) -> None:
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with ctx.wrap_socket(raw, server_side=True) as tls:
            _answer(StdlibConn(tls))
    except (OSError, PeerClosed):
        pass


def _pool(serve, size: int = 4) -> queue.SimpleQueue:
    """Worker threads serving the connections put on the returned queue (as a seproxy
    service hands accepted connections to its worker pool)."""
    jobs: queue.SimpleQueue = queue.SimpleQueue()

    def work() -> None:
        while True:
            serve(*jobs.get())

    for _ in range(size):
        threading.Thread(target=work, daemon=True).start()
    return jobs


def server_main(stack: str, pki: dict[str, str], port_pipe) -> None:
    if stack == "stdlib":
        ctx = stdlib_context(pki, server=True)
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        port_pipe.send(listener.getsockname()[1])
        jobs = _pool(_serve_stdlib)
        while True:
            raw, _ = listener.accept()
            jobs.put((ctx, raw))
    if stack == "dip":
        lst = transport.listen("dip", "127.0.0.1", 0, cfg=None)
    else:
        lst = transport.listen("dips", "127.0.0.1", 0, cfg=seproxy_cfg(pki, stack))
    port_pipe.send(lst.port)
    jobs = _pool(_serve_seproxy)
    while True:
        jobs.put((lst.accept(),))


# -- clients ------------------------------------------------------------------------------------------
class Client:
    def __init__(self, stack: str, pki: dict[str, str], port: int) -> None:
        self.stack, self.pki, self.port = stack, pki, port
        self.session = None
        self.reused = 0
        if stack == "stdlib":
            self.ctx = stdlib_context(pki, server=False)
        else:
            self.cfg = seproxy_cfg(pki, stack)

    def connect(self, resume: bool):
        if self.stack == "stdlib":
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = self.ctx.wrap_socket(raw, server_hostname="localhost",
                                       session=self.session if resume else None)
            return StdlibConn(tls)
        if self.stack == "dip":
            return transport.connect("dip", "127.0.0.1", self.port, cfg=None, timeout=10)
        if not resume:
            tlsbase.SESSIONS.clear()
        return transport.connect("dips", "127.0.0.1", self.port, cfg=self.cfg, timeout=10,
                                 proxy_location=self.pki["proxy"], server_hostname="localhost")

    def close(self, conn) -> None:
        if self.stack == "stdlib":
            self.reused += conn.tls.session_reused
            self.session = conn.tls.session
            conn.tls.close()
        else:
            self.reused += bool(getattr(conn, "session_reused", False))
            conn.close()

    def handshakes(self, seconds: float, resume: bool, server_pid: int) -> dict:
        self.close(self._echo(self.connect(False)))  # warm up, and a session to resume
        count, self.reused = 0, 0
        cpu = time.process_time() + process_cpu(server_pid)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.close(self._echo(self.connect(resume)))
            count += 1
        elapsed = time.perf_counter() - start
        cpu = time.process_time() + process_cpu(server_pid) - cpu
        return {"rate": count / elapsed, "count": count, "reused": self.reused,
                "cpu_ms": cpu / count * 1000}

    @staticmethod
    def _echo(conn):
        conn.send_frame(b"ping")
        assert conn.receive_frame() == b"ping"
        return conn

    def bulk(self, megabytes: int) -> float:
        conn = self.connect(False)
        chunk = memoryview(os.urandom(MiB))
        start = time.perf_counter()
        for _ in range(megabytes):
            conn.send_frame(chunk)
        conn.send_frame(b"END")
        assert conn.receive_frame() == b"OK"
        elapsed = time.perf_counter() - start
        self.close(conn)
        return megabytes * MiB / elapsed / 1e6


# -- handshakes in one thread (no scheduling noise): both ends driven step by step --------------
def _tcp_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return server, client


def _drive(steps) -> None:
    """Call each side's step until all report done (0); a side that wants data waits its turn."""
    done = [False] * len(steps)
    while not all(done):
        for i, step in enumerate(steps):
            if not done[i]:
                done[i] = step() == 0


def inline_handshakes(stack: str, pki: dict[str, str], count: int, resume: bool) -> tuple[float, int]:
    """(CPU ms per connection, sessions reused) for ``count`` connections (TCP + TLS
    handshake both ends + 4-byte echo + close) made in one thread.  seproxy stacks go
    through the real code of a connect (``tlsbase.open_client``: settings, context and
    session caches) and of an accept (``TLSListener.accept``), then both ends'
    ``handshake_step`` are called in turn, the server builds the credential dict."""
    reused = 0
    if stack == "stdlib":
        sctx, cctx = stdlib_context(pki, server=True), stdlib_context(pki, server=False)
        listener = socket.create_server(("127.0.0.1", 0), backlog=8)
        session = None

        def step(tls):
            def run():
                try:
                    tls.do_handshake()
                    return 0
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return 1
            return run

        start = time.process_time()
        for _ in range(count):
            raw_server, raw_client = _tcp_pair(listener)
            raw_server.setblocking(False)
            raw_client.setblocking(False)
            server = sctx.wrap_socket(raw_server, server_side=True, do_handshake_on_connect=False)
            client = cctx.wrap_socket(raw_client, server_hostname="localhost", do_handshake_on_connect=False,
                                      session=session if resume else None)
            _drive([step(client), step(server)])
            client.setblocking(True)
            server.setblocking(True)
            client.sendall(b"4:ping")
            server.sendall(server.recv(16))
            client.recv(16)
            reused += client.session_reused
            session = client.session
            client.close()
            server.close()
        elapsed = time.process_time() - start
        listener.close()
        return elapsed / count * 1000, reused
    cfg = seproxy_cfg(pki, stack)
    backend = transport.tls_backend(cfg).BACKEND
    listener = transport.listen("dips", "127.0.0.1", 0, cfg=cfg, backlog=8)
    tlsbase.SESSIONS.clear()
    start = time.process_time()
    for _ in range(count):
        if not resume:
            tlsbase.SESSIONS.clear()
        client = tlsbase.open_client(backend, "127.0.0.1", listener.port, cfg=cfg, timeout=10,
                                     proxy_location=pki["proxy"], server_hostname="localhost")
        server = listener.accept()
        _drive([client.handshake_step, server.handshake_step])
        server.peer_credentials()
        client.send_frame(b"ping")
        server.send_frame(server.receive_frame())
        client.receive_frame()
        reused += bool(client.session_reused)
        client.close()
        server.close()
    elapsed = time.process_time() - start
    listener.close()
    return elapsed / count * 1000, reused


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(stack: str, pki: dict[str, str]) -> tuple[multiprocessing.Process, int]:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=server_main, args=(stack, pki, child), daemon=True)
    server.start()
    return server, parent.recv()


def run(stacks: list[str], pki: dict[str, str], seconds: float, bulk_mb: int,
        rounds: int = 3, inline_count: int = 200) -> list[dict]:
    """All servers up at once; measurements of the stacks interleave round by round, so
    that a burst of load from elsewhere hits them alike; best round kept."""
    servers = {stack: start_server(stack, pki) for stack in stacks}
    rows = {stack: {"stack": stack, "inline": {}, "bulk": 0.0} for stack in stacks}
    try:
        clients = {stack: Client(stack, pki, port) for stack, (_, port) in servers.items()}
        for _ in range(rounds):
            for stack, client in clients.items():
                row, pid = rows[stack], servers[stack][0].pid
                for mode in ("full", "resumed"):
                    got = client.handshakes(seconds / rounds, resume=mode == "resumed", server_pid=pid)
                    row[mode] = max(row.get(mode, 0.0), got["rate"])
                    row[f"cpu_{mode}"] = min(row.get(f"cpu_{mode}", 1e9), got["cpu_ms"])
                    if mode == "resumed":
                        done = row.get("reused_counts", (0, 0))
                        row["reused_counts"] = (done[0] + got["reused"], done[1] + got["count"])
                row["bulk"] = max(row["bulk"], client.bulk(bulk_mb))
                if stack != "dip":
                    for mode in ("full", "resumed"):
                        cost, reused = inline_handshakes(stack, pki, inline_count, resume=mode == "resumed")
                        row["inline"][mode] = min(row["inline"].get(mode, 1e9), cost)
                        counts = row["inline"].get(f"reused_{mode}", (0, 0))
                        row["inline"][f"reused_{mode}"] = (counts[0] + reused, counts[1] + inline_count)
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.join()
    for row in rows.values():
        row["ratio"] = row["resumed"] / row["full"]
        row["reused"] = "{}/{}".format(*row["reused_counts"])
    return list(rows.values())


def section(rows: list[dict], seconds: float, bulk_mb: int, load: str = "") -> str:
    base = next(r for r in rows if r["stack"] == "stdlib")
    dip = next((r for r in rows if r["stack"] == "dip"), None)
    inline = ["| stack | CPU ms full | CPU ms resumed | full/resumed | sessions reused |",
              "|---|---|---|---|---|"]
    for r in rows:
        if r["inline"]:
            full, res = r["inline"]["full"], r["inline"]["resumed"]
            inline.append(f"| {r['stack']} | {full:.2f} | {res:.2f} | {full / res:.1f}x "
                          "| {}/{} |".format(*r["inline"]["reused_resumed"]))
    lines = [("| stack | connections/s full | connections/s resumed | resumed/full | sessions reused "
              "| CPU ms/conn full | CPU ms/conn resumed | minus dip: full | minus dip: resumed "
              "| bulk MB/s | bulk vs stdlib |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tls_cols = "| - | - "
        if dip is not None and r is not dip:
            tls_cols = (f"| {r['cpu_full'] - dip['cpu_full']:.2f} "
                        f"| {r['cpu_resumed'] - dip['cpu_full']:.2f} ")
        lines.append(f"| {r['stack']} | {r['full']:.0f} | {r['resumed']:.0f} | {r['ratio']:.1f}x "
                     f"| {r['reused'] if r is not dip else '-'} | {r['cpu_full']:.2f} "
                     f"| {r['cpu_resumed']:.2f} {tls_cols}| {r['bulk']:.0f} "
                     f"| {r['bulk'] / base['bulk']:.0%} |")
    return (
        "## TLS\n\n"
        f"`python bench/tls.py --seconds {seconds:g} --bulk-mb {bulk_mb}` on {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs{load}), Python {platform.python_version()}, "
        f"stdlib {ssl.OPENSSL_VERSION}, "
        f"pyOpenSSL on {SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        "A connection = TCP connect + TLS handshake (client presents an RFC 3820 proxy, server "
        "requires and verifies it; seproxy also builds the credential dict) + one 4-byte frame "
        "echoed + close. *full*: no session offered; *resumed*: the client offers the session of "
        "its previous connection. The stdlib rows use the same certificates, framing and server "
        "policy.\n\n"
        "**Handshake cost** (both ends in one thread, so no scheduling noise: the client's "
        "real connect path (`tlsbase.open_client`: settings, context and session caches, TCP "
        "connect), the server's real accept path (`TLSListener.accept`), then both ends' "
        "`handshake_step` in turn, the server's credential dict, the echo, both closes; CPU ms "
        "per connection (user + system), best of the rounds, 200 connections each; the "
        "stdlib row does the same with `ssl` objects):\n\n"
        + "\n".join(inline) + "\n\n"
        "**Connections and bulk** (server in a separate process: an accept loop and 4 worker "
        "threads, as a seproxy service; wall-clock rates; CPU ms/conn = "
        "client + server process CPU; *minus dip* subtracts the same connection without TLS; bulk = "
        "1 MiB frames over one connection, the server parses and drops them; the stacks take "
        "turns round by round and each keeps its best round):\n\n"
        + "\n".join(lines) + "\n\n"
        "Targets: resumed handshakes >= 3x full; pyOpenSSL bulk >= 70% of stdlib. "
        + verdict(rows) + "\n\n"
        "CPU time on this shared machine moves by +-30 % from run to run; instruction counts "
        "do not. `valgrind --tool=callgrind` over the one-thread connection (user-space "
        "instructions per connection, both ends, 60 minus 10 connections), before and after "
        "the 2026-11-28 resumption work (server session cache instead of stateless tickets, "
        "OpenSSL client cache off, connect/accept look-ups cached): pyOpenSSL full 24.9 M -> "
        "23.5 M, resumed 8.0 M -> 6.7 M (3.1x -> 3.5x); M2Crypto full 32.0 M -> 28.0 M, resumed "
        "9.4 M -> 5.4 M (3.4x -> 5.2x). About 88 % of a resumed pyOpenSSL connection's "
        "instructions are in `SSL_do_handshake`, mostly the key exchange.\n\n"
        "Notes: pyOpenSSL links OpenSSL 3.5, which negotiates the post-quantum hybrid key "
        "exchange X25519MLKEM768 with itself (stdlib and M2Crypto use OpenSSL 3.0: X25519), and "
        "its client sends a second key share (plain X25519) that the server does not use "
        "(pyOpenSSL has no call to choose groups); a resumed TLS 1.3 handshake still runs the "
        "key exchange (psk_dhe_ke, forward secrecy): that is most of a resumed connection's "
        "CPU. Resumption without key exchange (psk_ke) would be cheaper but gives up forward "
        "secrecy; it is not offered, nor is dropping the post-quantum group. Servers keep "
        "sessions in their cache (`OP_NO_TICKET`: a stateless ticket would carry only the "
        "leaf certificate, not the verified chain the credentials come from). Clients resume "
        "only with seproxy servers (ALPN `dips-seproxy`): DIRAC servers stall on resumed "
        "sessions.\n"
    )


def verdict(rows: list[dict]) -> str:
    base = next(r for r in rows if r["stack"] == "stdlib")
    parts = []
    for r in rows:
        if r["inline"]:
            ratio = r["inline"]["full"] / r["inline"]["resumed"]
            parts.append(f"{r['stack']} handshake cost full/resumed {ratio:.1f}x "
                         f"({'met' if ratio >= 3 else 'NOT met'})")
    bulk = next((r for r in rows if r["stack"] == "pyopenssl"), None)
    if bulk is not None:
        share = bulk["bulk"] / base["bulk"]
        parts.append(f"pyOpenSSL bulk {share:.0%} of stdlib ({'met' if share >= 0.7 else 'NOT met'})")
    return "This run: " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per handshake measurement")
    parser.add_argument("--bulk-mb", type=int, default=256)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        before = os.getloadavg()[0]
        rows = run(args.stacks.split(","), pki, args.seconds, args.bulk_mb, args.rounds)
    load = (f"; load average {before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
            f"{load_note(before)}")
    text = section(rows, args.seconds, args.bulk_mb, load)
    print(text)
    if args.write:
        print(f"written to {write_section('TLS', text)}")


if __name__ == "__main__":
    main()
