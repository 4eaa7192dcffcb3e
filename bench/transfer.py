"""File transfer throughput: seproxy vs the real DIRAC pair vs a raw TLS stream.

Cases (each ``--size-mib`` MiB, default 1024, up = client→server, down = server→client,
all over ``dips`` with the same generated PKI, on 127.0.0.1):

* seproxy TransferClient → seproxy service, DEncode and JSON, DIRAC's stop-and-wait
  stream (``stream_extension=False``) and the seproxy extension (window 8, 4 MiB
  chunks, adler32, binary chunk frames);
* DIRAC 9.1.22 TransferClient → DIRAC 9.1.22 ``DataManagement/StorageElement``;
* DIRAC 9.1.22 TransferClient → seproxy service (DIRAC's stream, by construction);
* raw Python ``ssl`` TLS stream of the same bytes (1 MiB ``sendall``s): the ceiling.

Each server runs in its own process (a fresh one per case); its peak RSS growth is
``VmHWM`` at the end minus ``VmRSS`` before the transfer. Files live in /dev/shm so
the disk is not what is measured. DIRAC clients time their own calls in the runner
(interpreter start-up excluded).

The seproxy cases and the raw TLS stream run ``--rounds`` times (default 3), interleaved
(each case once per round, the order reversed every other round); the report gives the
best round and the range. The DIRAC cases (slow) run once, between the rounds.

Usage: ``python bench/transfer.py [--size-mib N] [--rounds N] [--no-dirac] [--write]``;
``--write`` replaces the ``## Transfer`` section of docs/BENCHMARKS.md, keeping its
hand-written ``### Notes`` part.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import kept_notes, load_note, write_section
from bench.tls import make_pki, seproxy_cfg, stdlib_context

MIB = 1024 * 1024
SE = "DataManagement/StorageElement"


# -- helpers ------------------------------------------------------------------------------------
def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def self_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def adler_of(path: Path) -> int:
    value = 1
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(8 * MIB), b""):
            value = zlib.adler32(block, value)
    return value


def make_source(path: Path, size: int) -> int:
    block = os.urandom(8 * MIB)
    with open(path, "wb") as fh:
        left = size
        while left:
            part = block[: min(left, len(block))]
            fh.write(part)
            left -= len(part)
            block = block[1:] + block[:1]      # not one repeated block: no compression tricks
    return adler_of(path)


# -- seproxy service in a child process ---------------------------------------------------------
def serve_main(options: dict) -> None:
    from seproxy.cli import wiring
    from tests.transfer.TransferTestHandler import TransferTestHandler

    cfg = seproxy_cfg(options["pki"], "pyopenssl")
    section = cfg.service_section(SE)
    for name, value in (("Encoding", options["encoding"]), ("StoragePath", options["storage"]),
                        ("Authorization/Default", "all"), ("MaxThreads", "4")):
        cfg.setOption(f"{section}/{name}", value)
    service = wiring.service(cfg, SE, handler_class=TransferTestHandler, host="127.0.0.1", port=0,
                             protocol="dips").start()
    print(service.port, flush=True)
    sys.stdin.read()                       # until the parent closes our stdin
    service.stop()


class ChildServer:
    """A server process: seproxy (``--serve``) or an already started DIRAC one."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process, self.port = process, port
        self.rss_before = proc_kib(process.pid, "VmRSS")

    @classmethod
    def seproxy(cls, pki: dict, storage: Path, encoding: str) -> ChildServer:
        options = json.dumps({"pki": pki, "storage": str(storage), "encoding": encoding})
        process = subprocess.Popen([sys.executable, __file__, "--serve", options],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        port = int(process.stdout.readline())
        return cls(process, port)

    def growth_mib(self) -> float:
        return (proc_kib(self.process.pid, "VmHWM") - self.rss_before) / 1024

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- cases --------------------------------------------------------------------------------------
def seproxy_case(pki: dict, work: Path, src: Path, size: int, encoding: str,
                 extension: bool) -> dict:
    from seproxy.transfer.client import TransferClient

    storage = work / f"store-{encoding}-{extension}"
    server = ChildServer.seproxy(pki, storage, encoding)
    try:
        client = TransferClient(f"dips://127.0.0.1:{server.port}/{SE}", encoding=encoding,
                                config=seproxy_cfg(pki, "pyopenssl"), proxyLocation=pki["proxy"],
                                useCertificates=False, stream_extension=extension)
        pid = server.process.pid
        per_mib = 1000 / (size / MIB)
        client0, server0 = self_cpu_s(), proc_cpu_s(pid)
        started = time.perf_counter()
        up = client.sendFile(str(src), "bench.bin")
        up_s = time.perf_counter() - started
        client1, server1 = self_cpu_s(), proc_cpu_s(pid)
        back = work / "back.bin"
        started = time.perf_counter()
        down = client.receiveFile(str(back), "bench.bin")
        down_s = time.perf_counter() - started
        client2, server2 = self_cpu_s(), proc_cpu_s(pid)
        assert up["OK"] and down["OK"], (up, down)
        ok = adler_of(back) == adler_of(src) == adler_of(storage / "bench.bin")
        back.unlink()
        split = {"client_up": (client1 - client0) * per_mib, "server_up": (server1 - server0) * per_mib,
                 "client_down": (client2 - client1) * per_mib,
                 "server_down": (server2 - server1) * per_mib}
        return {"up": size / MIB / up_s, "down": size / MIB / down_s, "rss": server.growth_mib(),
                "ok": ok, "cpu_up": split["client_up"] + split["server_up"],
                "cpu_down": split["client_down"] + split["server_down"], **split}
    finally:
        server.stop()
        shutil.rmtree(storage, ignore_errors=True)


DIRAC_TIMED = """
import time
from DIRAC.Core.DISET.TransferClient import TransferClient
url, src, back = args
client = TransferClient(url)
t0 = time.perf_counter(); up = client.sendFile(src, "bench.bin"); t1 = time.perf_counter()
down = client.receiveFile(back, "bench.bin"); t2 = time.perf_counter()
result = {"up": up, "down": down, "up_s": t1 - t0, "down_s": t2 - t1}
"""


def dirac_client_case(client, url: str, server: ChildServer, work: Path, src: Path,
                      size: int, stored: Path) -> dict:
    back = work / "back.bin"
    outcome, = client.run({"exec": DIRAC_TIMED, "args": [url, str(src), str(back)]}, timeout=3600)
    value = outcome.unwrap()
    assert value["up"]["OK"] and value["down"]["OK"], value
    ok = adler_of(back) == adler_of(src) == adler_of(stored)
    back.unlink()
    return {"up": size / MIB / value["up_s"], "down": size / MIB / value["down_s"],
            "rss": server.growth_mib(), "ok": ok}


def dirac_cases(pki: dict, work: Path, src: Path, size: int, encodings: list[str]) -> dict:
    from tests.fixtures.dirac import DIRAC9, DiracClient, start_dirac_service, venv_or_fail
    from tests.fixtures.pki import REGISTRY_CFG

    venv = venv_or_fail(DIRAC9)
    fake_pki = SimpleNamespace(host_cert=pki["cert"], host_key=pki["key"], ca_dir=pki["ca_dir"])
    results = {}
    for encoding in encodings:
        client = DiracClient(venv, Path(pki["proxy"]), Path(pki["ca_dir"]), encoding=encoding)
        base = work / f"dirac-se-{encoding}"
        service = start_dirac_service(venv, {SE: {"BasePath": base}}, pki=fake_pki,
                                      registry=REGISTRY_CFG, workdir=work / f"dirac-{encoding}",
                                      encoding=encoding)
        try:
            server = ChildServer(service.process, service.port)
            results[("dirac-pair", encoding)] = dirac_client_case(
                client, service.url, server, work, src, size, base / "bench.bin")
        finally:
            service.stop()
            shutil.rmtree(base, ignore_errors=True)
        storage = work / f"store-diracclient-{encoding}"
        server = ChildServer.seproxy(pki, storage, encoding)
        try:
            results[("dirac-client-seproxy", encoding)] = dirac_client_case(
                client, f"dips://127.0.0.1:{server.port}/{SE}", server, work, src, size,
                storage / "bench.bin")
        finally:
            server.stop()
            shutil.rmtree(storage, ignore_errors=True)
    return results


def raw_tls_main(options: dict) -> None:
    """Child: accept one TLS connection, read ``size`` bytes, then send them back."""
    ctx = stdlib_context(options["pki"], server=True)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        print(listener.getsockname()[1], flush=True)
        raw, _ = listener.accept()
        with ctx.wrap_socket(raw, server_side=True) as tls:
            buf, left = bytearray(MIB), options["size"]
            while left:
                left -= tls.recv_into(buf, min(len(buf), left))
            tls.sendall(b"K")
            view, left = memoryview(bytes(MIB)), options["size"]
            while left:
                tls.sendall(view[: min(MIB, left)])
                left -= min(MIB, left)


def raw_tls_case(pki: dict, size: int) -> dict:
    process = subprocess.Popen([sys.executable, __file__, "--raw-tls",
                                json.dumps({"pki": pki, "size": size})],
                               stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    ctx = stdlib_context(pki, server=False)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw) as tls:
        block = memoryview(os.urandom(MIB))
        cpu0 = self_cpu_s() + proc_cpu_s(process.pid)
        started = time.perf_counter()
        left = size
        while left:
            tls.sendall(block[: min(MIB, left)])
            left -= min(MIB, left)
        tls.recv(1)
        up_s = time.perf_counter() - started
        cpu1 = self_cpu_s() + proc_cpu_s(process.pid)
        buf, left = bytearray(MIB), size
        started = time.perf_counter()
        while left:
            left -= tls.recv_into(buf, min(len(buf), left))
        down_s = time.perf_counter() - started
        cpu2 = self_cpu_s() + proc_cpu_s(process.pid)
    process.wait(timeout=30)
    return {"up": size / MIB / up_s, "down": size / MIB / down_s, "rss": float("nan"), "ok": True,
            "cpu_up": (cpu1 - cpu0) * 1000 / (size / MIB),
            "cpu_down": (cpu2 - cpu1) * 1000 / (size / MIB)}


# -- report -------------------------------------------------------------------------------------
LABELS = {
    ("seproxy", "dencode", False): "seproxy client → seproxy service, DEncode, DIRAC stop-and-wait",
    ("seproxy", "json", False): "seproxy client → seproxy service, JSON, DIRAC stop-and-wait",
    ("seproxy", "dencode", True): "seproxy client → seproxy service, DEncode, extension (w8, 4 MiB, adler32)",
    ("seproxy", "json", True): "seproxy client → seproxy service, JSON, extension (w8, 4 MiB, adler32, binary chunks)",
    ("dirac-pair", "dencode"): "DIRAC 9 client → DIRAC 9 StorageElement, DEncode",
    ("dirac-pair", "json"): "DIRAC 9 client → DIRAC 9 StorageElement, JSON",
    ("dirac-client-seproxy", "dencode"): "DIRAC 9 client → seproxy service, DEncode",
    ("dirac-client-seproxy", "json"): "DIRAC 9 client → seproxy service, JSON",
    ("raw-tls",): "raw Python ssl TLS stream (ceiling)",
}


SEPROXY_KEYS = [("seproxy", encoding, extension) for extension in (False, True)
                for encoding in ("dencode", "json")]


def summarize(rows: list[dict]) -> dict:
    """One case over its rounds: best MiB/s (and the worst), lowest CPU, highest RSS growth."""
    out = {"n": len(rows), "ok": all(row["ok"] for row in rows),
           "rss": max(row["rss"] for row in rows)}
    for way in ("up", "down"):
        out[way] = max(row[way] for row in rows)
        out[f"{way}_worst"] = min(row[way] for row in rows)
    for way in ("up", "down"):
        if f"cpu_{way}" in rows[0]:
            # the least disturbed round: its total, and its split between the processes
            best = min(rows, key=lambda row: row[f"cpu_{way}"])
            for key in (f"cpu_{way}", f"client_{way}", f"server_{way}"):
                if key in best:
                    out[key] = best[key]
    return out


def _rate(row: dict, way: str) -> str:
    if row["n"] == 1:
        return f"{row[way]:.0f}"
    return f"{row[way]:.0f} ({row[f'{way}_worst']:.0f}–{row[way]:.0f})"


def render(runs: dict, size: int, load: str, rounds: int, load_end: str = "",
           notes: str = "") -> str:
    results = {key: summarize(rows) for key, rows in runs.items()}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Transfer", "",
        f"`python bench/transfer.py --size-mib {size // MIB} --rounds {rounds} --write`, {now}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load} at the start"
        + (f", {load_end} at the end." if load_end else "."),
        f"{load_note(float(load))} Client and server share the 2 cores.",
        "",
        ("Method: one file of the given size in /dev/shm, sent with `sendFile` then fetched "
        "with `receiveFile` over `dips` (TLS, RFC 3820 proxy) on 127.0.0.1; MiB/s = size / "
        "wall time of the call (DIRAC clients time their own calls, interpreter start-up "
        "excluded); every case checks the adler32 of the stored and the fetched copy. Server "
        "RSS growth = `VmHWM` at the end − `VmRSS` before the transfer, one fresh server "
        "process per case (DIRAC's: one process for up and down)."),
        "",
        (f"Against run-order noise the seproxy cases and the raw TLS stream run in {rounds} "
        "interleaved rounds (each case once per round, the order reversed every other round); "
        "the table gives the best round and, in brackets, the range over the rounds "
        "(worst–best). The real DIRAC cases are slow (1 GiB at 15–40 MiB/s) and run once, "
        "between the rounds (after round "
        f"{(rounds - 1) // 2 + 1}), so a drift of the machine's load over the run touches both "
        "sides; their single run is compared with seproxy's best and worst round."),
        "",
        ("CPU ms/MiB = user + system CPU time of client and server together per MiB moved "
        "(both processes, all threads; lowest of the rounds; less sensitive to the machine's "
        "load than MiB/s; n/a for the DIRAC client, which runs in a separate runner process)."),
        "",
        ("| Case | Up MiB/s | Down MiB/s | CPU ms/MiB up | CPU ms/MiB down "
        "| Server RSS growth MiB | Data identical |"),
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, label in LABELS.items():
        if key in results:
            row = results[key]
            rss = "n/a" if row["rss"] != row["rss"] else f"{row['rss']:.1f}"
            cpu = [f"{row[k]:.1f}" if k in row else "n/a" for k in ("cpu_up", "cpu_down")]
            lines.append(f"| {label} | {_rate(row, 'up')} | {_rate(row, 'down')} | {cpu[0]} | "
                         f"{cpu[1]} | {rss} | {'yes' if row['ok'] else 'NO'} |")
    split = [key for key in SEPROXY_KEYS if key in results]
    if split:
        lines += ["", ("CPU per process, ms/MiB (the round with the lowest total; the receiver is "
                  "the server up and the client down):"), "",
                  ("| Case | client up (sends) | server up (receives) | client down (receives) "
                  "| server down (sends) |"), "|---|---:|---:|---:|---:|"]
        for key in split:
            row = results[key]
            lines.append(f"| {LABELS[key]} | " + " | ".join(
                f"{row[k]:.2f}" for k in ("client_up", "server_up", "client_down", "server_down"))
                + " |")
    lines += ["", ("Ratios (targets: stop-and-wait ≥ 8× the DIRAC pair each way; extension ≥ 0.5× "
              "the raw TLS stream; server RSS growth < 64 MiB); best round, worst round in "
              "brackets:"), ""]
    raw = results.get(("raw-tls",))
    for encoding in ("dencode", "json"):
        pair = results.get(("dirac-pair", encoding))
        plain = results.get(("seproxy", encoding, False))
        ext = results.get(("seproxy", encoding, True))
        if pair and plain:
            lines.append(
                f"- {encoding}: stop-and-wait / DIRAC pair = {plain['up'] / pair['up']:.1f}× up, "
                f"{plain['down'] / pair['down']:.1f}× down (worst round: "
                f"{plain['up_worst'] / pair['up']:.1f}×, {plain['down_worst'] / pair['down']:.1f}×)")
        if raw and ext:
            # each round's extension run against the same round's raw stream
            pairs = list(zip(runs[("seproxy", encoding, True)], runs[("raw-tls",)], strict=False))
            ratios = {way: [e[way] / r[way] for e, r in pairs] for way in ("up", "down")}
            lines.append(
                f"- {encoding}: extension / raw TLS = {ext['up'] / raw['up']:.2f} up, "
                f"{ext['down'] / raw['down']:.2f} down (best of each; per round: "
                + ", ".join(f"{u:.2f}/{d:.2f}" for u, d in zip(ratios["up"], ratios["down"], strict=False))
                + " up/down)")
    text = "\n".join(lines) + "\n"
    if notes:
        text += "\n" + notes.rstrip("\n") + "\n"
    return text


def run_seproxy_round(pki: dict, work: Path, src: Path, size: int, index: int, runs: dict) -> None:
    """One round: raw TLS and the four seproxy cases, in reverse order every other round."""
    keys = [("raw-tls",), *SEPROXY_KEYS]
    for key in keys if index % 2 == 0 else keys[::-1]:
        if key == ("raw-tls",):
            row = raw_tls_case(pki, size)
        else:
            row = seproxy_case(pki, work, src, size, key[1], key[2])
        runs.setdefault(key, []).append(row)
        print(f"round {index + 1}: {LABELS[key]}", {k: round(v, 2) if isinstance(v, float) else v
                                                     for k, v in row.items()}, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the seproxy and raw TLS cases (default 3)")
    parser.add_argument("--no-dirac", action="store_true", help="skip the real DIRAC cases")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--raw-tls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_main(json.loads(args.serve))
        return 0
    if args.raw_tls:
        raw_tls_main(json.loads(args.raw_tls))
        return 0
    load = f"{os.getloadavg()[0]:.1f}"
    size = args.size_mib * MIB
    rounds = max(1, args.rounds)
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = Path(tempfile.mkdtemp(prefix="seproxy-bench-transfer-", dir=base))
    runs: dict = {}
    try:
        pki = make_pki(work / "pki")
        src = work / "source.bin"
        make_source(src, size)
        for index in range(rounds):
            run_seproxy_round(pki, work, src, size, index, runs)
            if index == (rounds - 1) // 2 and not args.no_dirac:
                for key, row in dirac_cases(pki, work, src, size, ["dencode", "json"]).items():
                    runs[key] = [row]
                    print(LABELS[key], row, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_end = f"{os.getloadavg()[0]:.1f}"
    text = render(runs, size, load, rounds, load_end, kept_notes("Transfer") if args.write else "")
    print(text)
    if args.write:
        write_section("Transfer", text)
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda hook: None
    sys.exit(main())
