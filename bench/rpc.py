"""RPC calls/s and latency: seproxy and DIRAC 9 clients against seproxy and DIRAC 9 services.

Every service runs in its own process (no GIL sharing with the client), over ``dips``
with the dev PKI; clients present a ``dirac_user`` RFC 3820 proxy. Method: ``ping``
(the framework built-in; same handler file ``tests/interop/InteropHandler.py`` on both
servers). Modes:

* ``per-call``: DIRAC's model, one TLS connection per call;
* ``reuse``: seproxy's connection-reuse extension (``reuseConnection=True``);
  against a DIRAC server it falls back to per-call (shown for completeness);
* serial (1 client thread) and ``--threads`` concurrent client threads.

Baselines (stdlib ``ssl``, server in its own process): full mutual-TLS handshakes/s
(bench/tls.py: connect + handshake + one tiny frame + close, no resumption), and round
trips/s of one tiny frame on one connection, both in the bare loop (``sendall`` + one
``recv`` on each end, no framing code) and with bench/tls.py's framing code.

Besides calls/s and latency, the seproxy rows show the CPU time per call of the client
process and of the service process (user + system, from ``/proc/<pid>/stat``): on a
loaded machine calls/s move with the load, CPU per call much less.

The DIRAC rows need the interop venv (``tests/fixtures/dirac.py``, cached under
``~/.cache/seproxy-interop``); ``--no-dirac`` skips them.

Usage: ``PYTHONPATH=. python bench/rpc.py [--seconds S] [--threads N] [--no-dirac] [--write]``;
``--write`` replaces the ``## RPC`` section of docs/BENCHMARKS.md, keeping its hand-written
``### Notes`` part.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import kept_notes, load_note, machine_line, write_section
from seproxy.rpc.client.base import RPCClient
from tests.fixtures.pki import PKI, REGISTRY_CFG
from tests.fixtures.services import service_config

NAME = "Test/Interop"
HANDLER = REPO / "tests" / "interop" / "InteropHandler.py"


def load_tls_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_tls", REPO / "bench" / "tls.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- measuring ------------------------------------------------------------------------------------
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(make_call: Callable[[], Callable[[], Any]], threads: int, seconds: float,
            server_pid: int | None = None) -> dict:
    """Run calls for ``seconds`` in ``threads`` threads (each with its own client)."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[Any] = []
    stop = time.perf_counter() + seconds

    def work(index: int) -> None:
        call = make_call()
        call()  # warm-up (connection pool, TLS session cache)
        own = latencies[index]
        while time.perf_counter() < stop:
            start = time.perf_counter()
            result = call()
            own.append(time.perf_counter() - start)
            if not result.get("OK"):
                errors.append(result.get("Message"))
                return

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
    client_cpu = cpu_seconds(os.getpid())
    begin = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - begin
    client_cpu = cpu_seconds(os.getpid()) - client_cpu
    server_cpu = cpu_seconds(server_pid) - server_cpu if server_pid else None
    flat = sorted(x for own in latencies for x in own)
    if errors or not flat:
        return {"error": errors[:1] or ["no call completed"]}
    calls = len(flat) + threads  # + the warm-up calls, also in the CPU times
    return {"rate": len(flat) / elapsed, "calls": len(flat), "p50": statistics.median(flat) * 1000,
            "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000,
            "client_us": client_cpu / calls * 1e6,
            "server_us": server_cpu / calls * 1e6 if server_cpu is not None else None}


# -- servers --------------------------------------------------------------------------------------
def start_seproxy(pki: PKI, workdir: Path) -> tuple[subprocess.Popen, str, Any]:
    cfg = service_config(NAME, protocol="dips", pki=pki, options={"HandlerPath": str(HANDLER)},
                         authorization={"Default": "authenticated"})
    cfg_file, port_file = workdir / "seproxy.cfg", workdir / "seproxy.port"
    cfg_file.write_text(cfg.serialize())
    process = subprocess.Popen([sys.executable, "-m", "tests.rpc.service_process", str(cfg_file),
                                str(port_file), NAME], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not port_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("seproxy service did not start")
        time.sleep(0.05)
    return process, f"dips://127.0.0.1:{int(port_file.read_text().split()[0])}/{NAME}", cfg


def seproxy_caller(url: str, cfg: Any, proxy: str, reuse: bool) -> Callable[[], Callable[[], Any]]:
    def make() -> Callable[[], Any]:
        client = RPCClient(url, config=cfg, proxyLocation=proxy, reuseConnection=reuse)
        return client.ping
    return make


DIRAC_LOOP = """
import threading, time
from DIRAC.Core.DISET.RPCClient import RPCClient
url, threads, seconds = args
lat = [[] for _ in range(threads)]
errors = []
stop = time.perf_counter() + seconds
def work(i):
    client = RPCClient(url)
    client.ping()
    while time.perf_counter() < stop:
        t = time.perf_counter()
        r = client.ping()
        lat[i].append(time.perf_counter() - t)
        if not r["OK"]:
            errors.append(r["Message"]); return
ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
begin = time.perf_counter()
for t in ts: t.start()
for t in ts: t.join()
result = [errors, time.perf_counter() - begin, [x for own in lat for x in own]]
"""


def dirac_measure(venv: Any, pki: PKI, url: str, threads: int, seconds: float) -> dict:
    from tests.fixtures.dirac import dirac_cfg
    out = venv.run([{"exec": DIRAC_LOOP, "args": [url, threads, seconds]}], cfg=dirac_cfg(venv.major),
                   proxy=pki.proxy(group="dirac_user"), cert_dir=pki.ca_dir, timeout=seconds * 4 + 120)
    errors, elapsed, flat = out[0].unwrap()
    flat = sorted(flat)
    if errors or not flat:
        return {"error": errors[:1] or ["no call completed"]}
    return {"rate": len(flat) / elapsed, "calls": len(flat), "p50": statistics.median(flat) * 1000,
            "p99": flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000}


def _tight_echo(tls: Any, pki_files: dict, port_pipe: Any) -> None:
    """Child process: one stdlib TLS connection, each read echoed back at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    port_pipe.send(listener.getsockname()[1])
    raw, _ = listener.accept()
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with tls.stdlib_context(pki_files, server=True).wrap_socket(raw, server_side=True) as conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def tight_round_trips(tls: Any, pki_files: dict, seconds: float) -> float:
    """The bare Python TLS loop: one 8-byte frame sent, one read back, no framing code."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_tight_echo, args=(tls, pki_files, child), daemon=True)
    server.start()
    try:
        raw = socket.create_connection(("127.0.0.1", parent.recv()), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with tls.stdlib_context(pki_files, server=False).wrap_socket(
                raw, server_hostname="localhost") as conn:
            frame, count, start = b"\x00\x00\x00\x04ping", 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                conn.sendall(frame)
                conn.recv(4096)
                count += 1
            return count / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.join()


def baselines(tls: Any, pki_files: dict, seconds: float) -> dict:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=tls.server_main, args=("stdlib", pki_files, child), daemon=True)
    server.start()
    try:
        client = tls.Client("stdlib", pki_files, parent.recv())
        full = client.handshakes(seconds, resume=False, server_pid=server.pid)["rate"]
        conn = client.connect(False)
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.send_frame(b"ping")
            conn.receive_frame()
            count += 1
        trips = count / (time.perf_counter() - start)
        client.close(conn)
    finally:
        server.terminate()
        server.join()
    return {"handshakes": full, "round_trips": trips,
            "tight_round_trips": tight_round_trips(tls, pki_files, seconds)}


# -- report ---------------------------------------------------------------------------------------
def fmt(result: dict) -> str:
    if "error" in result:
        return f"| error: {str(result['error'][0])[:60]} | | | | |"
    cpu = [f"{result[k]:.0f}" if result.get(k) is not None else "" for k in ("client_us", "server_us")]
    return f"| {result['rate']:.0f} | {result['p50']:.1f} | {result['p99']:.1f} | {cpu[0]} | {cpu[1]} |"


def section(rows: list[tuple[str, str, str, int, dict]], base: dict, args: argparse.Namespace,
            load: float) -> str:
    header = ("| client | server | mode | threads | calls/s | p50 ms | p99 ms | client CPU µs/call "
              "| service CPU µs/call |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c} | {s} | {m} | {t} {fmt(r)}" for c, s, m, t, r in rows]
    by = {(c, s, m, t): r for c, s, m, t, r in rows}
    notes = []
    mine = by.get(("seproxy", "seproxy", "per-call", 1), {})
    pair = by.get(("DIRAC 9", "DIRAC 9", "per-call", 1), {})
    if "rate" in mine:
        notes.append(f"per-call serial = {mine['rate'] / base['handshakes']:.0%} of the bare handshake loop "
                     "(target >= 70%)")
        if "rate" in pair:
            notes.append(f"per-call serial = {mine['rate'] / pair['rate']:.1f}x the DIRAC pair (target >= 10x)")
    reuse = by.get(("seproxy", "seproxy", "reuse", 1), {})
    if "rate" in reuse:
        notes.append(f"reuse serial = {reuse['rate']:.0f} calls/s (target >= 5000), "
                     f"{reuse['rate'] / base['tight_round_trips']:.0%} of the bare round-trip loop, "
                     f"{reuse['rate'] / base['round_trips']:.0%} of the framed one")
    return (
        "## RPC\n\n"
        f"`PYTHONPATH=. python bench/rpc.py --seconds {args.seconds:g} --threads {args.threads}`, "
        f"{machine_line(load)} {ssl.OPENSSL_VERSION}. {load_note(load)}\n\n"
        "`ping` over `dips` (client presents a `dirac_user` RFC 3820 proxy; the service verifies it, "
        "builds the credential dict and authorises), each server in its own process, "
        f"{args.seconds:g} s per row. per-call = one TLS connection per call (DIRAC's model); reuse = "
        "seproxy's connection-reuse extension (falls back to per-call against DIRAC). CPU µs/call: "
        "user + system time of the client process / the service process divided by the calls (seproxy "
        "processes only). Baselines, stdlib "
        f"`ssl` (bench/tls.py): {base['handshakes']:.0f} full mutual-TLS handshakes/s, "
        f"{base['tight_round_trips']:.0f} round trips/s on one connection in the bare loop (`sendall` of "
        "an 8-byte frame, one `recv`, echoed by a child process doing the same), "
        f"{base['round_trips']:.0f}/s with bench/tls.py's framing code (frame parser on both ends, "
        "the server's 4 worker threads).\n\n"
        + "\n".join(lines) + "\n\n" + "".join(f"- {note}\n" for note in notes)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--no-dirac", action="store_true")
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, int, dict]] = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pki = PKI(work / "pki")
        proxy = str(pki.proxy(group="dirac_user"))
        tls = load_tls_bench()
        base = baselines(tls, {"ca_dir": str(pki.ca_dir), "cert": str(pki.host_cert),
                               "key": str(pki.host_key), "proxy": proxy}, args.seconds)
        process, url, cfg = start_seproxy(pki, work)
        dirac = None
        try:
            for mode in ("per-call", "reuse"):
                for threads in (1, args.threads):
                    result = measure(seproxy_caller(url, cfg, proxy, mode == "reuse"), threads, args.seconds,
                                     server_pid=process.pid)
                    rows.append(("seproxy", "seproxy", mode, threads, result))
                    print(rows[-1], flush=True)
            if not args.no_dirac:
                from tests.fixtures.dirac import DIRAC9, ensure_venv, start_dirac_service
                venv = ensure_venv(DIRAC9)
                dirac = start_dirac_service(venv, {NAME: {"HandlerPath": "InteropHandler.py",
                                                          "Authorization": {"Default": "authenticated"}}},
                                            pki=pki, registry=REGISTRY_CFG, workdir=work / "dirac")
                for threads in (1, args.threads):
                    rows.append(("DIRAC 9", "DIRAC 9", "per-call", threads,
                                 dirac_measure(venv, pki, dirac.url, threads, args.seconds)))
                    print(rows[-1], flush=True)
                    rows.append(("DIRAC 9", "seproxy", "per-call", threads,
                                 dirac_measure(venv, pki, url, threads, args.seconds)))
                    print(rows[-1], flush=True)
                    for mode in ("per-call", "reuse"):
                        rows.append(("seproxy", "DIRAC 9", mode, threads, measure(
                            seproxy_caller(dirac.url, cfg, proxy, mode == "reuse"), threads, args.seconds)))
                        print(rows[-1], flush=True)
        finally:
            process.terminate()
            process.wait(30)
            if dirac is not None:
                dirac.stop()
    text = section(rows, base, args, load)
    if args.write and (notes := kept_notes("RPC")):
        text = text.rstrip("\n") + "\n\n" + notes
    print(text)
    if args.write:
        print(f"written to {write_section('RPC', text)}")


if __name__ == "__main__":
    main()
