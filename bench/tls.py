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

Each server runs in its own process (no GIL sharing with the client).

Usage: ``python bench/tls.py [--seconds S] [--bulk-mb N] [--write]``; ``--write``
replaces the ``## TLS`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seproxy.config import Config  # noqa: E402
from seproxy.errors import PeerClosed, SeproxyError  # noqa: E402
from seproxy.rpc import transport  # noqa: E402
from seproxy.rpc.transport import tlsbase  # noqa: E402
from seproxy.rpc.wire.framing import Frame, FrameParser, frame_header  # noqa: E402
from seproxy.security.pki import DevPKI  # noqa: E402

MiB = 1024 * 1024
STACKS = ["stdlib", "pyopenssl", "m2crypto"]


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
def _serve_seproxy(conn: transport.Transport) -> None:
    try:
        conn.handshake(10)
        conn.peer_credentials()  # what a service does for every connection
        while True:
            frame = conn.receive_frame()
            if frame == b"END" or len(frame) < 64:
                conn.send_frame(b"OK" if frame == b"END" else frame)
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
            conn = StdlibConn(tls)
            while True:
                frame = conn.receive_frame()
                if frame == b"END" or len(frame) < 64:
                    conn.send_frame(b"OK" if frame == b"END" else frame)
    except (OSError, PeerClosed):
        pass


def server_main(stack: str, pki: dict[str, str], port_pipe) -> None:
    if stack == "stdlib":
        ctx = stdlib_context(pki, server=True)
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        port_pipe.send(listener.getsockname()[1])
        while True:
            raw, _ = listener.accept()
            threading.Thread(target=_serve_stdlib, args=(ctx, raw), daemon=True).start()
    lst = transport.listen("dips", "127.0.0.1", 0, cfg=seproxy_cfg(pki, stack))
    port_pipe.send(lst.port)
    while True:
        threading.Thread(target=_serve_seproxy, args=(lst.accept(),), daemon=True).start()


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
            self.reused += bool(conn.session_reused)
            conn.close()

    def handshakes(self, seconds: float, resume: bool) -> tuple[float, int, int]:
        self.close(self._echo(self.connect(False)))  # warm up, and a session to resume
        count, self.reused = 0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.close(self._echo(self.connect(resume)))
            count += 1
        return count / (time.perf_counter() - start), count, self.reused

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


def run_stack(stack: str, pki: dict[str, str], seconds: float, bulk_mb: int) -> dict:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=server_main, args=(stack, pki, child), daemon=True)
    server.start()
    try:
        port = parent.recv()
        client = Client(stack, pki, port)
        full, n_full, _ = client.handshakes(seconds, resume=False)
        resumed, n_res, reused = client.handshakes(seconds, resume=True)
        bulk = max(client.bulk(bulk_mb) for _ in range(2))
    finally:
        server.terminate()
        server.join()
    return {"stack": stack, "full": full, "resumed": resumed, "ratio": resumed / full,
            "reused": f"{reused}/{n_res}", "bulk": bulk}


def section(rows: list[dict], seconds: float, bulk_mb: int) -> str:
    base = next(r for r in rows if r["stack"] == "stdlib")
    lines = ["| stack | full handshakes/s | resumed handshakes/s | resumed/full | sessions reused "
             "| bulk MB/s | bulk vs stdlib |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['stack']} | {r['full']:.0f} | {r['resumed']:.0f} | {r['ratio']:.1f}x "
                     f"| {r['reused']} | {r['bulk']:.0f} | {r['bulk'] / base['bulk']:.0%} |")
    return (
        "## TLS\n\n"
        f"`python bench/tls.py --seconds {seconds:g} --bulk-mb {bulk_mb}` on {platform.node()} "
        f"({platform.machine()}, {os.cpu_count()} CPUs **shared by 8 engineers working at the same "
        f"time: noisy**), Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        "Handshake = TCP connect + TLS handshake (client presents an RFC 3820 proxy, server "
        "requires and verifies it and builds the credential dict) + one 4-byte frame echoed + "
        "close; server in a separate process. Bulk = 1 MiB frames over one connection, server "
        "parses and drops them. The stdlib row uses the same certificates, framing and server "
        "policy. Targets: resumed >= 3x full; pyOpenSSL bulk >= 70% of stdlib.\n\n"
        + "\n".join(lines) + "\n"
    )


def write_section(text: str) -> Path:
    path = REPO / "docs" / "BENCHMARKS.md"
    current = path.read_text() if path.exists() else (
        "# Benchmarks\n\nMeasured by the scripts in `bench/`; each area owns its `## <area>` section.\n\n")
    pattern = re.compile(r"^## TLS\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(lambda _m: text + "\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per handshake measurement")
    parser.add_argument("--bulk-mb", type=int, default=256)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(Path(tmp))
        rows = [run_stack(s, pki, args.seconds, args.bulk_mb) for s in args.stacks.split(",")]
    text = section(rows, args.seconds, args.bulk_mb)
    print(text)
    if args.write:
        print(f"written to {write_section(text)}")


if __name__ == "__main__":
    main()
