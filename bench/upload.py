"""``uploadFile`` into a File SE against ``cp`` of the same file, in one run.

Starts ``seproxy serve`` (the embedded default: dips, TLS, cache and File SE
``SE-LOCAL`` under a temporary data directory) in its own process, sends a file of
``--size`` MiB into the caller's staging area (``sendFile putFile/<name>``, not timed),
then times the ``uploadFile`` RPC alone (wall clock at the client: the cache -> SE
step, checksum and catalogue included). The same source file is then copied with
``cp`` into the same SE directory (wall clock of the ``cp`` process, the SE's file
removed before each). Two placements of the SE:

* **same filesystem** as the cache: the staged file is renamed into the SE;
* **other filesystem** (``--other-fs``, default ``/dev/shm``): the staged file is
  copied once, its adler32 verified against the one computed while it arrived.

Best of ``--repeat`` for every row. Usage: ``python bench/upload.py [--size 256]
[--repeat 5] [--other-fs /dev/shm] [--write]``; ``--write`` replaces the
``## uploadFile`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import kept_notes, load_note, machine_line, write_section
from tests.fixtures import services

MiB = 1024 * 1024
LFN = "/dirac/bench/up.bin"


def make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        for index in range(size_mib):
            fh.write(index.to_bytes(8, "big") + block[8:])


def measure(work: Path, storage: Path, source: Path, repeat: int) -> tuple[list[float], list[float]]:
    """(uploadFile seconds, cp seconds) of each round with SE-LOCAL rooted at ``storage``."""
    from seproxy.cli.common import DEV_PROXY
    from seproxy.config import Config
    from seproxy.rpc.client import RPCClient
    from seproxy.transfer.client import TransferClient

    data = work / f"data-{storage.name}"
    proc, lines = services.start_serve(
        data, "-o", f"/Resources/StorageElements/SE-LOCAL/File/Path={storage}"
    )
    try:
        url = next(line.split()[1] for line in lines if line.strip().startswith("DISET"))
        cfg = Config.load([data / "dev.cfg"])
        cfg.set_placeholder("DATADIR", data)
        kwargs = {"config": cfg, "proxyLocation": str(data / DEV_PROXY), "useCertificates": False}
        rpc, transfer = RPCClient(url, **kwargs), TransferClient(url, **kwargs)
        stored = storage / LFN.lstrip("/")
        tiny = work / "tiny.bin"
        tiny.write_bytes(b"x")
        overheads = []
        for _ in range(repeat):  # the RPC itself: connection, TLS, storage set-up, catalogue
            assert transfer.sendFile(str(tiny), f"putFile/{stored.name}")["OK"]
            start = time.perf_counter()
            assert rpc.uploadFile("SE-LOCAL", LFN)["OK"]
            overheads.append(time.perf_counter() - start)
            stored.unlink()
        print(f"uploadFile of 1 byte ({storage}): best {min(overheads):.3f} s", file=sys.stderr)
        uploads, copies = [], []
        for _ in range(repeat):
            assert transfer.sendFile(str(source), f"putFile/{stored.name}")["OK"]
            start = time.perf_counter()
            res = rpc.uploadFile("SE-LOCAL", LFN)
            uploads.append(time.perf_counter() - start)
            assert res["OK"] and res["Value"] == source.stat().st_size, res
            assert stored.stat().st_size == source.stat().st_size
            stored.unlink()
            start = time.perf_counter()
            subprocess.run(["cp", str(source), str(stored)], check=True)
            copies.append(time.perf_counter() - start)
            stored.unlink()
        return uploads, copies
    finally:
        services.stop_serve(proc)


Rows = list[tuple[str, list[float], list[float]]]


def run(size_mib: int, repeat: int, other_fs: Path) -> Rows:
    work = Path(tempfile.mkdtemp(prefix="seproxy-bench-upload-"))
    other = Path(tempfile.mkdtemp(prefix="seproxy-bench-upload-", dir=other_fs))
    try:
        source = work / "source.bin"
        make_file(source, size_mib)
        same = work / "storage"
        same.mkdir()
        rows = [("same filesystem (rename)", *measure(work, same, source, repeat))]
        if os.stat(other).st_dev != os.stat(work).st_dev:
            rows.append((f"other filesystem ({other_fs}, copy)",
                         *measure(work, other, source, repeat)))
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)


def section(rows: Rows, size_mib: int, repeat: int, load: float, fs_note: str) -> str:
    def cells(up: list[float], cp: list[float]) -> str:
        ratios = [u / c for u, c in zip(up, cp, strict=False)]
        return (f"{min(up):.3f} | {statistics.median(up):.3f} | {min(cp):.3f} | "
                f"{statistics.median(cp):.3f} | {min(up) / min(cp):.2f}x | "
                f"{statistics.median(ratios):.2f}x")

    table = "\n".join(f"| {name} | {cells(up, cp)} |" for name, up, cp in rows)
    return (
        "## uploadFile\n\n"
        f"`python bench/upload.py --size {size_mib} --repeat {repeat} --write`, "
        f"{machine_line(load)}\n{load_note(load)}\n\n"
        "Method: `seproxy serve` (embedded default, its own process) with the File SE "
        "`SE-LOCAL` placed on the cache's filesystem or on another one; a "
        f"{size_mib} MiB file is sent to `putFile/<name>` (not timed), then the `uploadFile` "
        "RPC is timed at the client (cache -> SE, checksum, catalogue); `cp` = the same source "
        "file copied by `cp` into the same SE directory (wall clock of the process), right after "
        f"each uploadFile; {repeat} rounds, seconds; ratio of the bests and median of the "
        f"per-round ratios. {fs_note}\n\n"
        "| SE placement | uploadFile best | uploadFile median | cp best | cp median "
        "| best / best | median ratio |\n|---|---:|---:|---:|---:|---:|---:|\n"
        + table + "\n"
        + ("\n" + kept_notes("uploadFile") if kept_notes("uploadFile") else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="file size in MiB (default 256)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--other-fs", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = run(args.size, args.repeat, args.other_fs)

    def fstype(path: Path) -> str:
        out = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True)
        return out.stdout.strip() or "?"

    fs_note = f"Cache filesystem: {fstype(Path(tempfile.gettempdir()))}; other: {fstype(args.other_fs)}."
    text = section(rows, args.size, args.repeat, load, fs_note)
    print(text)
    if args.write:
        print(f"written to {write_section('uploadFile', text)}")


if __name__ == "__main__":
    main()
