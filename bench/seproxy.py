"""StorageElementProxy user stories end to end, and HTTP download against nginx.

Starts ``seproxy serve`` (the embedded default, in a temporary data directory, free
ports) in its own process, then measures with a file of ``--size`` MiB:

* **put via proxy**: ``TransferClient.sendFile("putFile/<name>")`` + ``uploadFile``
  (the DIRAC Proxy plugin's putFile), seproxy's client, wall clock;
* **get via proxy**: ``prepareFile`` + ``TransferClient.receiveFile("getFile/<name>")``;
* **HTTP download**: ``prepareFileForHTTP`` (not timed) then ``curl -o /dev/null`` of
  ``HttpURL`` (timed by curl: ``time_total``);
* **nginx**: the same file served by nginx (``sendfile on``, one worker, started by
  this script on 127.0.0.1) and fetched by the same curl command.

Best of ``--repeat`` runs each. Usage: ``python bench/seproxy.py [--size 512]
[--repeat 3] [--write]``; ``--write`` replaces the ``## SEProxy`` section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import load_note, machine_line, write_section
from tests.fixtures import services
from tests.fixtures.servers import start_on_free_port

SECTION = services.SEPROXY_SECTION

MiB = 1024 * 1024


def make_file(path: Path, size_mib: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as fh:
        for index in range(size_mib):
            fh.write(index.to_bytes(8, "big") + block[8:])


def start_serve(data: Path) -> tuple[subprocess.Popen, str]:
    """``seproxy serve`` in its own process; returns it and its DISET URL."""
    proc, lines = services.start_serve(data, "-o", f"{SECTION}/MaxThreads=8")
    return proc, next(line.split()[1] for line in lines if line.strip().startswith("DISET"))


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen, int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (work / "logs").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    user = "user root;\n" if os.getuid() == 0 else ""

    def launch(port: int) -> subprocess.Popen:
        conf.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\nerror_log {work}/error.log;\n"
            "events { worker_connections 64; }\n"
            "http {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n"
            f"  client_body_temp_path {work}/body;\n  proxy_temp_path {work}/proxy;\n"
            f"  fastcgi_temp_path {work}/fastcgi;\n  uwsgi_temp_path {work}/uwsgi;\n"
            f"  scgi_temp_path {work}/scgi;\n"
            f"  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n")
        return subprocess.Popen([nginx, "-p", str(work), "-e", f"{work}/error.log", "-c", str(conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    try:
        port, proc = start_on_free_port(launch, "nginx")
    except RuntimeError as exc:
        raise SystemExit(f"{exc}: {(work / 'error.log').read_text(errors='replace')}") from exc
    return proc, port


def curl_seconds(url: str) -> float:
    out = subprocess.run(["curl", "-sSf", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", url],
                         check=True, capture_output=True, text=True, timeout=600).stdout.split()
    return float(out[0])


def run(size_mib: int, repeat: int) -> dict[str, float]:
    from seproxy.cli.common import DEV_PROXY, fill_dev_placeholders
    from seproxy.config import Config
    from seproxy.rpc.client.base import RPCClient
    from seproxy.transfer.client import TransferClient

    work = Path(tempfile.mkdtemp(prefix="seproxy-bench-"))
    serve, nginx = None, None
    try:
        data = work / "data"
        serve, url = start_serve(data)
        cfg = Config.load()  # the development site `serve` runs, its PKI's DNs filled in
        fill_dev_placeholders(cfg, data)
        kwargs = {"config": cfg, "proxyLocation": str(data / DEV_PROXY), "useCertificates": False,
                  "encoding": "dencode"}  # as `seproxy put/get` do
        rpc, transfer = RPCClient(url, **kwargs), TransferClient(url, **kwargs)
        source = work / "bench.bin"
        make_file(source, size_mib)
        lfn = "/dirac/bench/bench.bin"
        results: dict[str, float] = {}

        def best(name: str, action) -> None:
            times = []
            for _ in range(repeat):
                times.append(action())
            results[name] = size_mib / min(times)

        def put() -> float:
            start = time.perf_counter()
            assert transfer.sendFile(str(source), "putFile/bench.bin")["OK"]
            res = rpc.uploadFile("SE-LOCAL", lfn)
            assert res["OK"], res
            return time.perf_counter() - start

        def get() -> float:
            out = work / "out.bin"
            start = time.perf_counter()
            assert rpc.prepareFile("SE-LOCAL", lfn)["OK"]
            res = transfer.receiveFile(str(out), "getFile/bench.bin")
            assert res["OK"], res
            elapsed = time.perf_counter() - start
            out.unlink()
            return elapsed

        def http() -> float:
            res = rpc.prepareFileForHTTP(lfn)
            assert res["OK"] and "HttpURL" in res, res
            return curl_seconds(res["HttpURL"])

        best("put via proxy", put)
        best("get via proxy", get)
        best("HTTP download (seproxy)", http)
        www = work / "www"
        www.mkdir()
        shutil.copy(source, www / "bench.bin")
        nginx, port = start_nginx(www, work)
        best("HTTP download (nginx sendfile)", lambda: curl_seconds(f"http://127.0.0.1:{port}/bench.bin"))
        return results
    finally:
        for proc in (serve, nginx):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is serve else signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def section(results: dict[str, float], size_mib: int, repeat: int, load: float) -> str:
    nginx = results["HTTP download (nginx sendfile)"]
    ratio = results["HTTP download (seproxy)"] / nginx if nginx else float("nan")
    rows = "\n".join(f"| {name} | {value:,.0f} |" for name, value in results.items())
    return (
        "## SEProxy\n\n"
        f"`python bench/seproxy.py --size {size_mib} --repeat {repeat} --write`, {machine_line(load)}\n"
        f"{load_note(load)}\n\n"
        f"Method: `seproxy serve` on the embedded default (dips, TLS, File SE on local disk) in its "
        f"own process; a {size_mib} MiB file; best of {repeat}; MiB/s = size / wall time. put = "
        "`sendFile putFile/<name>` + `uploadFile` (DIRAC Proxy plugin order, seproxy client in "
        "DEncode like `seproxy put`, the service answers DEncode (`Encoding = dencode`), the stream "
        "extension is negotiated); get = `prepareFile` + `receiveFile getFile/<name>`; HTTP = "
        "`curl -o /dev/null` of the `prepareFileForHTTP` URL (staging not timed) vs the same file "
        "from nginx (`sendfile on`, 1 worker) started by the script; client and servers share the "
        "2 cores.\n\n"
        "| path | MiB/s |\n|---|---:|\n" + rows + "\n\n"
        f"HTTP download: seproxy at **{ratio:.0%}** of nginx (target: at least 50%).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="file size in MiB (default 512)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    results = run(args.size, args.repeat)
    text = section(results, args.size, args.repeat, load)
    print(text)
    if args.write:
        print(f"written to {write_section('SEProxy', text)}")


if __name__ == "__main__":
    main()
