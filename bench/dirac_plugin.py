"""A DIRAC user's put/get through seproxy: DIRAC 9.1's StorageElement with ``UseProxy`` and
seproxy's DIRAC extension, against DIRAC's own TransferClient and ``seproxy put``/``get``.

Starts ``seproxy serve`` (embedded default, temporary data directory, free ports) in its own
process, then, with a file of ``--size`` MiB, in one run:

* **DIRAC 9.1 StorageElement (plugin)**: ``StorageElement("SE-LOCAL").putFile``/``getFile``
  in a DIRAC 9.1.22 venv with this checkout ``pip install``-ed (``UseProxy = True``), timed
  inside the DIRAC process around the call; in DIRAC's default encoding (JSON) and DEncode;
* **DIRAC 9.1 TransferClient**: what DIRAC's own clients do in the plugin's order
  (``TransferClient.sendFile putFile/<name>`` + ``RPCClient.uploadFile``, ``prepareFile`` +
  ``receiveFile getFile/<name>``), same process, same service;
* **seproxy put / get**: the ``seproxy put``/``get`` commands, wall clock of the process
  (includes its start-up, ~0.3 s).

Best of ``--repeat`` rounds; each round runs every path once, in the order plugin
(JSON, DEncode), ``seproxy put``/``get``, TransferClient (JSON, DEncode). Usage:
``python bench/dirac_plugin.py [--size 1024] [--repeat 3] [--write]``; ``--write`` replaces
the ``## DIRAC plugin`` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import kept_notes, load_note, machine_line, write_section
from bench.seproxy import make_file, start_serve
from tests.fixtures.cfgtext import cfg_text
from tests.interop.peer_services import dirac_cfg
from tests.interop.peer_venv import DIRAC9, ensure_seproxy_venv, ensure_venv
from tests.storage.test_dirac_compare import RSS_CS_FALLBACK

SE = "SE-LOCAL"
LFN = "/dirac/bench/dirac-plugin.bin"

#: runs in the DIRAC process (args: source file, download directory, url, repeat); sets `result`
TIMED = """
import os, time
from DIRAC.Core.DISET.RPCClient import RPCClient
from DIRAC.Core.DISET.TransferClient import TransferClient
from DIRAC.Resources.Storage.StorageElement import StorageElement

source, down, url, repeat, which = args
lfn, name = %(lfn)r, os.path.basename(%(lfn)r)
se = StorageElement(%(se)r)
out = os.path.join(down, name)

def timed(action):
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        res = action()
        elapsed = time.perf_counter() - start
        assert res["OK"], res
        if os.path.exists(out):
            os.unlink(out)
        best = elapsed if best is None else min(best, elapsed)
    return best

def plugin_put():
    res = se.putFile({lfn: source})
    return res if not res["OK"] or res["Value"]["Failed"] else {"OK": True}

def plugin_get():
    res = se.getFile(lfn, localPath=down)
    return res if not res["OK"] or res["Value"]["Failed"] else {"OK": True}

def dirac_put():
    res = TransferClient(url).sendFile(source, "putFile/" + name)
    return RPCClient(url).uploadFile(%(se)r, lfn) if res["OK"] else res

def dirac_get():
    res = RPCClient(url).prepareFile(%(se)r, lfn)
    return TransferClient(url).receiveFile(out, "getFile/" + name) if res["OK"] else res

if which == "plugin":
    result = {"plugin put": timed(plugin_put), "plugin get": timed(plugin_get)}
else:
    result = {"TransferClient put": timed(dirac_put), "TransferClient get": timed(dirac_get)}
""" % {"lfn": LFN, "se": SE}


def client_cfg(data: Path, url: str) -> str:
    registry = (data / "dev.cfg").read_text()
    se = {"BackendType": "File", "AccessProtocols": "file", "WriteProtocols": "file",
          "File": {"PluginName": "File", "Protocol": "file", "Access": "remote", "Host": "",
                   "Port": "", "Path": str(data / "storage")}}
    extra = cfg_text({"Resources": {"StorageElements": {SE: se}},
                      "LocalSite": {"StorageElements": {SE: {"UseProxy": "True"}}},
                      "Systems": {"DataManagement": {"URLs": {"StorageElementProxy": url}}}})
    return dirac_cfg(9, registry=registry, extra=extra)


def seproxy_cli(data: Path, url: str, *argv: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seproxy", *argv, "--url", url, "--data-dir", str(data),
                    "--proxy", str(data / "proxy.pem")],
                   check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - start


def run(size_mib: int, repeat: int) -> dict[str, float]:
    venv = ensure_seproxy_venv(ensure_venv(DIRAC9))
    work = Path(tempfile.mkdtemp(prefix="seproxy-bench-plugin-"))
    serve = None
    try:
        data = work / "data"
        serve, url = start_serve(data)
        source = work / "bench.bin"
        make_file(source, size_mib)
        down = work / "down"
        down.mkdir()
        seconds: dict[str, float] = {}

        def keep(name: str, value: float) -> None:
            seconds[name] = min(value, seconds.get(name, value))

        def dirac(which: str, encoding: str) -> None:
            outcome = venv.run([{"exec": RSS_CS_FALLBACK},
                                {"exec": TIMED, "args": [str(source), str(down), url, 1, which]}],
                               cfg=client_cfg(data, url), encoding=encoding,
                               proxy=data / "proxy.pem", cert_dir=data / "pki" / "certificates",
                               timeout=3600)
            for name, value in outcome[1].unwrap().items():
                keep(f"DIRAC 9.1 {name} ({'JSON' if encoding == 'json' else 'DEncode'})", value)

        copy = work / "copy.bin"
        # rounds interleave the paths, so that each sees the machine's load of the moment
        for _ in range(repeat):
            for encoding in ("json", "dencode"):
                dirac("plugin", encoding)
            keep("seproxy put", seproxy_cli(data, url, "put", str(source), LFN, SE))
            keep("seproxy get", seproxy_cli(data, url, "get", LFN, SE, str(copy)))
            copy.unlink()
            for encoding in ("json", "dencode"):
                dirac("TransferClient", encoding)
        return {name: size_mib / value for name, value in seconds.items()}
    finally:
        if serve is not None and serve.poll() is None:
            from tests.fixtures.services import stop_serve

            stop_serve(serve)
        shutil.rmtree(work, ignore_errors=True)


def section(rates: dict[str, float], size_mib: int, repeat: int, load: float) -> str:
    rows = "\n".join(f"| {name} | {value:,.0f} |" for name, value in rates.items())
    ratios = []
    for direction in ("put", "get"):
        cli = rates[f"seproxy {direction}"]
        for enc in ("JSON", "DEncode"):
            plugin = rates[f"DIRAC 9.1 plugin {direction} ({enc})"]
            ratios.append(f"{direction} {enc} **{plugin / cli:.0%}**")
    return (
        "## DIRAC plugin\n\n"
        f"`python bench/dirac_plugin.py --size {size_mib} --repeat {repeat} --write`, "
        f"{machine_line(load)}\n{load_note(load)}\n\n"
        "Method: `seproxy serve` on the embedded default (dips, TLS, File SE on local disk) "
        f"in its own process; a {size_mib} MiB file; best of {repeat} rounds, each running every "
        "path once (plugin, `seproxy put`/`get`, TransferClient: the paths share each moment's "
        "load); MiB/s = size / wall time. "
        "DIRAC rows run in one DIRAC 9.1.22 process (the cached interop venv with this checkout "
        "`pip install`-ed), timed around the call: `StorageElement.putFile`/`getFile` with "
        "`UseProxy = True` (seproxy's `Resources.Storage.ProxyStorage`: seproxy's clients, the "
        "stream extension negotiated), and DIRAC's own `TransferClient` + `RPCClient` in the "
        "same order (`sendFile putFile/<name>` + `uploadFile`; `prepareFile` + "
        "`receiveFile getFile/<name>`: DIRAC's stop-and-wait stream). `seproxy put`/`get` rows: "
        "the CLI process's wall clock (start-up included). Client and server share the 2 cores.\n\n"
        "| path | MiB/s |\n|---|---:|\n" + rows + "\n\n"
        "Plugin vs `seproxy put`/`get` (target >= 80%): " + ", ".join(ratios) + ".\n"
        + ("\n" + kept_notes("DIRAC plugin") if kept_notes("DIRAC plugin") else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update docs/BENCHMARKS.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rates = run(args.size, args.repeat)
    text = section(rates, args.size, args.repeat, load)
    print(text)
    print(json.dumps(rates))
    if args.write:
        print(f"written to {write_section('DIRAC plugin', text)}")


if __name__ == "__main__":
    main()
