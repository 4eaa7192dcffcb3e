"""Storage plugins: putFile / getFile MiB/s of one large file, with the client's peak RSS.

For each plugin its real server runs on 127.0.0.1 (the same launchers as the tests):
File (a local directory), S3 (moto's standalone server), XROOT (the xrootd daemon),
XROOT-GSI and HTTPS (the xrootd daemon with GSI and its XrdHttp, a user proxy),
DIP (a real DIRAC 9 ``DataManagement/StorageElement`` service; needs the interop venv).
Each operation runs in a fresh child process that builds a ``StorageElement`` and
makes one call; the child reports its wall time and ``ru_maxrss`` (peak RSS of the
client: the streaming bound). The downloaded copy is checked against the source
(size and adler32).

Usage: ``python bench/storage.py [--size-mib 1024] [--plugins File,S3,XROOT,XROOT-GSI,HTTPS,DIP]
[--write]``;
``--write`` replaces the ``## Storage`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import load_note, machine_line, write_section

LFN = "/dirac/bench/big.bin"
NOTES = (
    "\nReading: peak RSS does not grow with the file (a 64 MiB run gave File 27, S3 131/97, "
    "XROOT 87/77, DIP 74 MiB): every plugin streams. XROOT-GSI and HTTPS authenticate "
    "with a user proxy (GSI; TLS client certificate on XrdHttp) against the same xrootd, "
    "whose authorization database gives the user only its directory. S3 put holds boto3's multipart buffers "
    "(16 MiB parts, 4 in flight). The S3 figures measure moto (a pure-Python in-memory server), "
    "the DIP figures DIRAC's own StorageElement service (M2Crypto, 1 MiB FileHelper chunks) -- "
    "not the plugins. Tested servers: moto 5.2.1, xrootd 5.5.3 (XrdHttp for HTTPS), DIRAC 9.1.22.\n"
)


def child(args: argparse.Namespace) -> None:
    """One storage call in this (fresh) process; prints seconds and peak RSS as JSON."""
    from seproxy.config import Config
    from seproxy.storage import StorageCredentials, StorageElement

    cfg = Config.load([args.cfg], use_default=False)
    creds = StorageCredentials(proxy_path=args.proxy) if args.proxy else None
    se = StorageElement("SE-BENCH", config=cfg, credentials=creds)
    start = time.perf_counter()
    if args.op == "put":
        res = se.putFile({LFN: args.src})
    else:
        res = se.getFile(LFN, localPath=args.dest)
    elapsed = time.perf_counter() - start
    ok = res["OK"] and LFN in res["Value"]["Successful"]
    print(
        json.dumps(
            {
                "ok": ok,
                "seconds": elapsed,
                "result": str(res)[:300],
                "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def run_child(op: str, cfg: Path, src: Path, dest: Path, proxy: str | None) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        op,
        "--cfg",
        str(cfg),
        "--src",
        str(src),
        "--dest",
        str(dest),
    ] + (["--proxy", proxy] if proxy else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{op} child failed: {out.stderr[-2000:]}")
    return json.loads(lines[-1])


def make_source(path: Path, size_mib: int) -> str:
    adler = 1
    block = os.urandom(1024 * 1024)
    with path.open("wb") as fh:
        for i in range(size_mib):
            chunk = block[i % 7 :] + block[: i % 7]  # vary content per MiB
            adler = zlib.adler32(chunk, adler)
            fh.write(chunk)
    return f"{adler & 0xFFFFFFFF:08x}"


def file_adler(path: Path) -> str:
    from seproxy.localfs import file_adler32

    return file_adler32(path)


def se_cfg(section: dict, protocol: str, extra: dict | None = None) -> str:
    from tests.storage.helpers import cfg_text, se_tree

    tree = se_tree("SE-BENCH", {"Main": section}, AccessProtocols=protocol, WriteProtocols=protocol)
    if extra:
        tree["DIRAC"].update(extra)
    return cfg_text(tree)


def backends(names: list[str], work: Path):
    """Yield (name, cfg text, proxy, stop) for each requested plugin with its server up."""
    from tests.fixtures import servers

    for name in names:
        if name == "File":
            root = work / "file-root"
            root.mkdir()
            from tests.storage.helpers import file_section

            yield name, se_cfg(file_section(str(root)), "file"), None, lambda: None
        elif name == "S3":
            s3 = servers.start_moto(work)
            s3.create_bucket("bench")
            section = s3.section("bench", Timeout="300")
            yield name, se_cfg(section, "s3"), None, lambda s=s3: servers.stop_process(s.proc)
        elif name == "XROOT":
            base = Path(tempfile.mkdtemp(prefix="seproxy-xrootd-bench-"))
            xrd = servers.start_xrootd(base)
            section = xrd.section("/bench", Timeout="300")

            def stop(x=xrd, b=base) -> None:
                servers.stop_process(x.proc)
                shutil.rmtree(b, ignore_errors=True)

            yield name, se_cfg(section, "root"), None, stop
        elif name in ("XROOT-GSI", "HTTPS"):
            from tests.fixtures.pki import PKI

            base = Path(tempfile.mkdtemp(prefix="seproxy-xrootd-gsi-bench-"))
            gsi = servers.start_xrootd_gsi(base, PKI(base / "pki"))
            # the XRootD GSI client's trust anchors (read once per client process)
            os.environ["XrdSecGSICADIR"] = str(gsi.ca_dir)
            if name == "HTTPS":
                section, protocol = gsi.https_section("/a", Timeout="300"), "https"
            else:
                section, protocol = gsi.section("/a", Timeout="300"), "root"

            def stop_gsi(g=gsi, b=base) -> None:
                servers.stop_process(g.server.proc)
                shutil.rmtree(b, ignore_errors=True)

            yield name, se_cfg(section, protocol), str(gsi.proxy("usera")), stop_gsi
        elif name == "DIP":
            from tests.fixtures import dirac as interop
            from tests.fixtures.pki import PKI, REGISTRY_CFG

            pki = PKI(work / "pki")
            venv = interop.ensure_venv(interop.DIRAC9)
            svc = interop.start_dirac_service(
                venv,
                {"DataManagement/StorageElement": {"BasePath": str(work / "dip-base")}},
                pki=pki,
                registry=REGISTRY_CFG,
                workdir=work / "dip-service",
                encoding="json",
            )
            from tests.storage.helpers import dip_section

            section = dip_section(svc.port, Timeout="600")
            cfg = se_cfg(section, "dips", {"Security": {"CALocation": str(pki.ca_dir)}})
            yield name, cfg, str(pki.proxy("dirac_user")), svc.stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--plugins", default="File,S3,XROOT,XROOT-GSI,HTTPS,DIP")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", choices=["put", "get"])
    parser.add_argument("--cfg")
    parser.add_argument("--src")
    parser.add_argument("--dest")
    parser.add_argument("--proxy")
    args = parser.parse_args()
    if args.child:
        args.op = args.child
        child(args)
        return

    work = Path(tempfile.mkdtemp(prefix="seproxy-bench-storage-"))
    rows = []
    try:
        src = work / "big.bin"
        expected = make_source(src, args.size_mib)
        load = os.getloadavg()[0]
        for name, cfg_text, proxy, stop in backends(args.plugins.split(","), work):
            try:
                cfg = work / f"{name}.cfg"
                cfg.write_text(cfg_text)
                dest = work / f"get-{name}"
                dest.mkdir()
                put = run_child("put", cfg, src, dest, proxy)
                get = run_child("get", cfg, src, dest, proxy)
                copy = dest / "big.bin"
                valid = (
                    put["ok"]
                    and get["ok"]
                    and copy.stat().st_size == src.stat().st_size
                    and file_adler(copy) == expected
                )
                rows.append((name, put, get, valid))
                print(
                    name,
                    "put",
                    f"{args.size_mib / put['seconds']:.0f} MiB/s",
                    "get",
                    f"{args.size_mib / get['seconds']:.0f} MiB/s",
                    "valid",
                    valid,
                    flush=True,
                )
                if not valid:
                    print("  put:", put["result"], "\n  get:", get["result"], flush=True)
                copy.unlink(missing_ok=True)
            finally:
                stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "## Storage",
        "",
        f"`python bench/storage.py --size-mib {args.size_mib} --write`, {machine_line(load)}",
        f"{load_note(load)} Client and server share the 2 cores.",
        "",
        f"Method: one {args.size_mib} MiB file of random bytes; each operation is one "
        "`StorageElement` call (`putFile` then `getFile`) in a fresh client process against "
        "the plugin's real server on 127.0.0.1 (File: local directory on the same disk; "
        "S3: moto's standalone server, which keeps objects in memory; XROOT: xrootd 5.5 from "
        "Debian, no authentication; XROOT-GSI: the same with GSI (a user proxy, grid-map, "
        "authorization database); HTTPS: that server's XrdHttp (WebDAV, the proxy as TLS client "
        "certificate); DIP: real DIRAC 9.1.22 StorageElement service). MiB/s = size / wall time of "
        "the call; peak RSS = the client process's `ru_maxrss` (interpreter and imports "
        "included). Every downloaded copy was checked (size and adler32).",
        "",
        "| Plugin | putFile MiB/s | putFile peak RSS MiB | getFile MiB/s "
        "| getFile peak RSS MiB | copy verified |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, put, get, valid in rows:
        lines.append(
            f"| {name} | {args.size_mib / put['seconds']:.0f} | {put['maxrss_kib'] / 1024:.0f} | "
            f"{args.size_mib / get['seconds']:.0f} | {get['maxrss_kib'] / 1024:.0f} | "
            f"{'yes' if valid else 'NO'} |"
        )
    text = "\n".join(lines) + "\n" + NOTES
    print(text)
    if args.write:
        write_section("Storage", text)


if __name__ == "__main__":
    main()
