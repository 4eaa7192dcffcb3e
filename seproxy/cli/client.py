"""Client subcommands: ``ping``, ``whoami`` (operators) and ``put``, ``get``,
``http-url``, ``call`` (users), all through a StorageElementProxy.

``put`` and ``get`` make the calls in the order DIRAC's ``Proxy`` storage plugin
makes them (``sendFile putFile/<name>`` + ``uploadFile``; ``prepareFile`` +
``receiveFile getFile/<name>``), so they exercise exactly what DIRAC clients use.
The service URL is ``--url``, else ``/Systems/DataManagement/URLs/StorageElementProxy``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from seproxy.cli.common import SERVICE, add_common_options, check, load_config, proxy_for, to_json
from seproxy.errors import SeproxyError


def _clients(args: argparse.Namespace, url: str | None = None) -> tuple[Any, Any, str]:
    from seproxy.rpc.client.base import RPCClient
    from seproxy.transfer.client import TransferClient

    cfg = load_config(args)
    target = url or getattr(args, "url", None) or SERVICE
    # DEncode (DIRAC 8.0's) carries file chunks as raw bytes, JSON as base64
    kwargs: dict[str, Any] = {"config": cfg, "encoding": "dencode"}
    proxy = proxy_for(args)
    if proxy:  # a user proxy wins over /DIRAC/Security/UseServerCertificate
        kwargs["proxyLocation"] = proxy
        kwargs["useCertificates"] = False
    return RPCClient(target, **kwargs), TransferClient(target, **kwargs), target


@contextlib.contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[[int], None] | None]:
    if not sys.stderr.isatty():
        yield None
        return
    from seproxy.transfer.client import progress_bar

    with progress_bar(total, label) as update:
        yield update


# -- operators ---------------------------------------------------------------------------
def cmd_ping(args: argparse.Namespace) -> int:
    rpc, _, _ = _clients(args, args.url_arg)
    info = check(rpc.ping())
    if args.json:
        print(to_json(info))
        return 0
    print(f"{info.get('name')} at {info.get('URL') or args.url_arg}: OK")
    print(f"  version         {info.get('version')}")
    print(f"  service uptime  {info.get('service uptime')} s (since {info.get('service start time')})")
    print(f"  host uptime     {info.get('host uptime')} s, load {info.get('load')}")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    rpc, _, _ = _clients(args, args.url_arg)
    cred = check(rpc.whoami())
    if args.json:
        print(to_json(cred))
        return 0
    for key, label in (("DN", "DN"), ("username", "user name"), ("group", "group"),
                       ("VO", "VO"), ("properties", "properties"), ("isProxy", "proxy"),
                       ("isLimitedProxy", "limited proxy"), ("secondsLeft", "seconds left")):
        if key in cred:
            value = cred[key]
            if isinstance(value, list):
                value = ", ".join(value) or "(none)"
            print(f"{label:14s}{value}")
    return 0


# -- users -----------------------------------------------------------------------------
def cmd_put(args: argparse.Namespace) -> int:
    local = Path(args.local)
    if not local.is_file():
        raise SeproxyError(f"{local} is not a file")
    rpc, transfer, _ = _clients(args)
    name = os.path.basename(args.lfn)
    with _progress(local.stat().st_size, f"put {name}") as update:
        check(transfer.sendFile(str(local), f"putFile/{name}", progress=update), "upload to the proxy: ")
    size = check(rpc.uploadFile(args.se, args.lfn), "uploadFile: ")
    print(f"{args.lfn} stored on {args.se} ({size} bytes)")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    rpc, transfer, _ = _clients(args)
    name = os.path.basename(args.lfn)
    dest = Path(args.dest or name)
    if dest.is_dir():
        dest = dest / name
    size = None
    with contextlib.suppress(Exception):
        found = check(rpc.callProxyMethod(args.se, "getFileSize", [args.lfn], {}))
        size = found["Successful"].get(args.lfn)
    check(rpc.prepareFile(args.se, args.lfn), "prepareFile: ")
    from seproxy.localfs import atomic_write

    # a fresh hidden temporary name (O_EXCL, no symlink), renamed only once complete
    with _progress(size, f"get {name}") as update, atomic_write(str(dest)) as sink:
        check(transfer.receiveFile(sink, f"getFile/{name}", progress=update),
              "download from the proxy: ")
    print(f"{args.lfn} -> {dest} ({dest.stat().st_size} bytes)")
    return 0


def cmd_http_url(args: argparse.Namespace) -> int:
    rpc, _, _ = _clients(args)
    lfns = args.lfn if len(args.lfn) > 1 else args.lfn[0]
    result = rpc.prepareFileForHTTP(lfns)
    value = check(result, "prepareFileForHTTP: ")
    if args.json:
        print(to_json({k: v for k, v in result.items() if k != "rpcStub"}))
        return 0
    for lfn, reason in value.get("Failed", {}).items():
        print(f"ERROR {lfn}: {reason}", file=sys.stderr)
    if "HttpURL" not in result:
        raise SeproxyError("no HTTP URL: nothing was staged, or HttpAccess is off on the service")
    print(result["HttpURL"])
    return 0 if not value.get("Failed") else 2


def _parse_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_call(args: argparse.Namespace) -> int:
    rpc, _, _ = _clients(args)
    positional = [_parse_arg(a) for a in args.args]
    keywords: dict[str, Any] = {}
    for item in args.kw:
        key, sep, value = item.partition("=")
        if not sep:
            raise SeproxyError(f"--kw needs NAME=VALUE, not {item!r}")
        keywords[key] = _parse_arg(value)
    value = check(rpc.callProxyMethod(args.se, args.method, positional, keywords),
                  f"{args.method}: ")
    print(to_json(value))
    failed = value.get("Failed") if isinstance(value, dict) else None
    return 2 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    def client_parser(name: str, help_text: str, *, url_positional: bool = False) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_common_options(parser)
        if url_positional:
            parser.add_argument("url_arg", metavar="URL",
                                help="service URL, e.g. dips://host:9139/DataManagement/"
                                "StorageElementProxy (or System/Service from the configuration)")
            parser.add_argument("--json", action="store_true", help="machine-readable output")
        else:
            parser.add_argument("--url", help="StorageElementProxy URL (default: "
                                "/Systems/DataManagement/URLs/StorageElementProxy)")
        parser.add_argument("--proxy", metavar="FILE", help="proxy to present (default: "
                            "$X509_USER_PROXY, /tmp/x509up_u<uid>, else <data dir>/proxy.pem)")
        return parser

    ping = client_parser("ping", "check that a DISET service answers (version, uptime, load)",
                         url_positional=True)
    ping.set_defaults(func=cmd_ping)
    whoami = client_parser("whoami", "show how a DISET service sees you (DN, user, group, "
                           "properties)", url_positional=True)
    whoami.set_defaults(func=cmd_whoami)

    put = client_parser("put", "upload a local file to LFN on a storage element through the proxy")
    put.add_argument("local", metavar="LOCAL")
    put.add_argument("lfn", metavar="LFN")
    put.add_argument("se", metavar="SE")
    put.set_defaults(func=cmd_put)

    get = client_parser("get", "download LFN from a storage element through the proxy")
    get.add_argument("lfn", metavar="LFN")
    get.add_argument("se", metavar="SE")
    get.add_argument("dest", metavar="DEST", nargs="?", help="file or directory (default ./<name>)")
    get.set_defaults(func=cmd_get)

    http_url = client_parser("http-url", "stage LFN(s) on the proxy and print a one-time HTTP "
                             "download URL (several LFNs come as one tar)")
    http_url.add_argument("lfn", metavar="LFN", nargs="+")
    http_url.add_argument("--json", action="store_true", help="print the whole answer")
    http_url.set_defaults(func=cmd_http_url)

    call = client_parser("call", "run a storage method on SE as yourself through the proxy "
                         "(callProxyMethod); ARGS are JSON or plain strings")
    call.add_argument("se", metavar="SE")
    call.add_argument("method", metavar="METHOD", help="e.g. exists, getFileMetadata, listDirectory")
    call.add_argument("args", metavar="ARGS", nargs="*")
    call.add_argument("--kw", action="append", default=[], metavar="NAME=VALUE",
                      help="keyword argument (JSON or string), e.g. --kw recursive=true")
    call.set_defaults(func=cmd_call)
