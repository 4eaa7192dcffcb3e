"""Client subcommands through a StorageElementProxy, with the habits of DIRAC's scripts.

``ping``, ``whoami`` (operators); ``put``, ``get``, ``ls``, ``stat``, ``mkdir``, ``rm``,
``http-url``, ``call`` (users). Arguments follow DIRAC: the LFN first
(``seproxy put LFN LOCAL SE`` like ``dirac-dms-add-file``), the storage element
after the LFNs (``get LFN [LFN ...] SE [DEST]``); an ``LFN:`` prefix is accepted and
every LFN is checked before a byte is sent. ``put`` and ``get`` make the calls in the
order DIRAC's ``Proxy`` storage plugin makes them (``sendFile putFile/<name>`` +
``uploadFile``; ``prepareFile`` + ``receiveFile getFile/<name>``), print the adler32
of what went over the wire and compare it with the storage's. Nothing is overwritten
without ``-f`` (neither an LFN nor a local file).

Who you are: ``--proxy``, else DIRAC's proxy location, else ``<data dir>/proxy.pem``;
with none of them the command stops (``--host-cert`` acts as the host on purpose).
The service URL is ``--url``, else ``/Systems/DataManagement/URLs/StorageElementProxy``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from seproxy.checksum import adler32
from seproxy.cli.common import (
    SERVICE,
    add_common_options,
    check,
    emit,
    load_config,
    proxy_for,
    to_json,
)
from seproxy.cli.progress import Bars
from seproxy.errors import AuthError, SeproxyError
from seproxy.localfs import adler32_hex, atomic_write, copy_stream, file_adler32
from seproxy.storage.utils import check_lfn

log = logging.getLogger("seproxy.cli")

LFN_PREFIX = "LFN:"
STDIO = "-"
#: failures worth another attempt with --retries (the connection, not the request)
_TRANSIENT = re.compile(r"connect|Connection|timed out|Cound not request transfer|"
                        r"Error while proposing|Broken pipe|reset by peer", re.IGNORECASE)
_UNKNOWN_SE = ("_getConfigStorageName", "Failed to create StorageElement plugins")
_ERRNO_PATH = re.compile(r"\[Errno \d+\] ([^:\]]+): '[^']*'")


# -- arguments ---------------------------------------------------------------------------
def lfn_of(text: str) -> str:
    """``LFN:/vo/x`` or ``/vo/x`` -> ``/vo/x``, validated (``PathError`` -> ``ERROR``)."""
    lfn = text[len(LFN_PREFIX):] if text.upper().startswith(LFN_PREFIX) else text
    check_lfn(lfn, None)
    return lfn


def looks_like_lfn(text: str) -> bool:
    return text.startswith("/") or text.upper().startswith(LFN_PREFIX)


def read_list(path: str) -> list[list[str]]:
    """Lines of ``--file LIST`` (``-`` is stdin), split on blanks; ``#`` comments skipped."""
    try:
        text = sys.stdin.read() if path == STDIO else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SeproxyError(f"cannot read {path}: {exc.strerror or exc}") from None
    return [line.split() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def split_lfns_se(items: list[str], command: str) -> tuple[list[str], str, list[str]]:
    """``LFN [LFN ...] SE [REST ...]`` -> (LFNs, SE, REST); the SE is the first non-LFN."""
    index = next((i for i, item in enumerate(items) if not looks_like_lfn(item)), None)
    if index is None:
        raise SeproxyError(f"{command}: no storage element given (usage: seproxy {command} "
                           "LFN [LFN ...] SE)")
    return [lfn_of(item) for item in items[:index]], items[index], items[index + 1:]


# -- the session: clients, retries, error texts --------------------------------------------
@dataclass
class Session:
    args: argparse.Namespace
    rpc: Any
    transfer: Any
    url: str
    bars: Bars
    known_ses: list[str]

    def attempts(self) -> int:
        return 1 + max(0, int(getattr(self.args, "retries", 0) or 0))

    def retry(self, what: str, call: Callable[[], dict]) -> dict:
        """``call()`` again (up to --retries more times) while it fails to connect."""
        result: dict = {}
        for attempt in range(self.attempts()):
            started = time.monotonic()
            result = call()
            log.debug("%s: %s in %.3f s", what, "OK" if result.get("OK") else
                      f"failed ({result.get('Message')})", time.monotonic() - started)
            if result.get("OK") or not _TRANSIENT.search(str(result.get("Message", ""))):
                return result
            if attempt + 1 < self.attempts():
                log.warning("%s failed (%s); retrying (%d/%d)", what, result.get("Message"),
                            attempt + 1, self.attempts() - 1)
                time.sleep(min(2.0 * (attempt + 1), 10.0))
        return result

    def value(self, what: str, call: Callable[[], dict], se: str | None = None) -> Any:
        result = self.retry(what, call)
        if not isinstance(result, dict) or not result.get("OK"):
            message = result.get("Message", "failed") if isinstance(result, dict) else repr(result)
            raise SeproxyError(f"{what}: {self.explain(message, se)}")
        return result.get("Value")

    def storage(self, se: str, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.value(method, lambda: self.rpc.callProxyMethod(se, method, list(args), kwargs), se)

    def single(self, se: str, method: str, lfn: str, **kwargs: Any) -> Any:
        """One LFN's value of a Successful/Failed storage answer (``ERROR`` if it failed)."""
        value = self.storage(se, method, [lfn], **kwargs)
        if lfn in value.get("Failed", {}):
            raise SeproxyError(f"{lfn}: {self.explain(str(value['Failed'][lfn]), se)}")
        return value.get("Successful", {}).get(lfn)

    def explain(self, message: str, se: str | None) -> str:
        """A server message in the user's words: no server paths, known SEs listed."""
        if any(marker in message for marker in _UNKNOWN_SE):
            return f"unknown storage element {se!r}{self.configured()}"
        if "certificate expired" in message:
            return (f"{message} - a certificate expired: check with `seproxy proxy-info`, "
                    "renew your proxy with `seproxy proxy-init`")
        if "No such file or directory" in message:
            return "no such file or directory"
        return _ERRNO_PATH.sub(r"\1", message)

    def configured(self) -> str:
        return f" (configured: {', '.join(self.known_ses)})" if self.known_ses else ""

    def check_se(self, se: str) -> None:
        """Before any file byte is sent: an SE this configuration does not list is checked
        with the proxy (``isValid``; the proxy may know more SEs than this client)."""
        if se in self.known_ses:
            return
        result = self.retry("isValid", lambda: self.rpc.callProxyMethod(se, "isValid", [], {}))
        if not result.get("OK"):
            raise SeproxyError(self.explain(str(result.get("Message", "failed")), se))


def _proxy_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "host_cert", False):
        log.debug("acting as the host certificate (--host-cert)")
        return {"useCertificates": True}
    proxy = proxy_for(args)
    if proxy is None:
        raise AuthError("no user proxy found ($X509_USER_PROXY, /tmp/x509up_u<uid>, "
                        "<data dir>/proxy.pem): make one with `seproxy proxy-init`, or pass "
                        "--proxy FILE (--host-cert acts as this host on purpose)")
    from seproxy.security.x509 import X509Chain

    try:
        chain = X509Chain.from_file(proxy)
    except (SeproxyError, OSError) as exc:
        raise AuthError(f"cannot read the proxy {proxy}: {exc}") from None
    if chain.seconds_left == 0:
        end = min(f.not_after for f in chain.facts)
        ago = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - end.replace(tzinfo=None)
        raise AuthError(f"your proxy {proxy} expired at {end:%Y-%m-%d %H:%M:%S} UTC "
                        f"({_duration(ago.total_seconds())} ago): renew it with "
                        "`seproxy proxy-init`")
    log.debug("presenting proxy %s: %s, group %s, %d s left", proxy, chain.identity_dn,
              chain.dirac_group, chain.seconds_left)
    return {"proxyLocation": proxy, "useCertificates": False}


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s"


def session(args: argparse.Namespace, url: str | None = None) -> Session:
    from seproxy.rpc.client import RPCClient
    from seproxy.transfer.client import TransferClient

    cfg = load_config(args)
    target = url or getattr(args, "url", None) or SERVICE
    # DEncode (DIRAC 8.0's) carries file chunks as raw bytes, JSON as base64
    kwargs: dict[str, Any] = {"config": cfg, "encoding": "dencode", **_proxy_kwargs(args)}
    rpc, transfer = RPCClient(target, **kwargs), TransferClient(target, **kwargs)
    timeout = getattr(args, "timeout", None)
    if timeout:  # the user's word, below DIRAC's 120 s floor too
        rpc.timeout = transfer.timeout = float(timeout)
    log.debug("service %s (URLs %s), timeout %s s", target, ", ".join(rpc.urls), rpc.timeout)
    bars = Bars(enabled=False if getattr(args, "no_progress", False) or getattr(args, "json", False)
                else None)
    return Session(args, rpc, transfer, target, bars, cfg.getSections("/Resources/StorageElements"))


# -- operators ---------------------------------------------------------------------------
def cmd_ping(args: argparse.Namespace) -> int:
    s = session(args, args.url_arg)
    info = s.value("ping", s.rpc.ping)
    emit(args, info, [
        f"{info.get('name')} at {info.get('URL') or args.url_arg}: OK",
        f"  version         {info.get('version')}",
        f"  service uptime  {info.get('service uptime')} s (since {info.get('service start time')})",
        f"  host uptime     {info.get('host uptime')} s, load {info.get('load')}"])
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    s = session(args, args.url_arg)
    cred = s.value("whoami", s.rpc.whoami)
    lines = []
    for key, label in (("DN", "DN"), ("username", "user name"), ("group", "group"),
                       ("VO", "VO"), ("properties", "properties"), ("isProxy", "proxy"),
                       ("isLimitedProxy", "limited proxy"), ("secondsLeft", "seconds left")):
        if key in cred:
            value = cred[key]
            if isinstance(value, list):
                value = ", ".join(value) or "(none)"
            lines.append(f"{label:14s}{value}")
    emit(args, cred, lines)
    return 0


# -- put ---------------------------------------------------------------------------------
class _Adler(io.RawIOBase):
    """A write-through sink that keeps the adler32 of what passed."""

    def __init__(self, sink: BinaryIO) -> None:
        super().__init__()
        self.sink, self.adler, self.size = sink, 1, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.adler = adler32(data, self.adler)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    @property
    def hex(self) -> str:
        return adler32_hex(self.adler)


@contextlib.contextmanager
def _stdin_pipe() -> Iterator[tuple[int, Callable[[], str]]]:
    """Standard input through a pipe, its adler32 computed on the way (bounded memory)."""
    read_fd, write_fd = os.pipe()
    found: dict[str, str] = {}

    def pump() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out:
                found["adler"] = copy_stream(sys.stdin.buffer, out, 1 << 20)[1]
        except OSError as exc:  # the reader went away: the transfer reports it
            found["error"] = str(exc)

    thread = threading.Thread(target=pump, daemon=True, name="seproxy-stdin")
    thread.start()
    try:
        yield read_fd, lambda: (thread.join(), found.get("adler", ""))[1]
    finally:
        os.close(read_fd)
        thread.join(timeout=5)


def _put_jobs(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    if args.file:
        rows = read_list(args.file)
        jobs = []
        for row in rows:
            if len(row) == 2 and args.items:
                row = row + args.items[:1]
            if len(row) != 3:
                raise SeproxyError(f"--file {args.file}: expected 'LFN LOCAL SE' per line, got "
                                   f"{' '.join(row)!r}")
            jobs.append(tuple(row))
    else:
        if len(args.items) != 3:
            raise SeproxyError("put takes LFN LOCAL SE (DIRAC's order, as dirac-dms-add-file), "
                               "or --file LIST")
        jobs = [tuple(args.items)]
    checked = []
    for lfn, local, se in jobs:
        # the old `put LOCAL LFN SE`: the first argument is a local file, the second is not
        if not lfn.upper().startswith(LFN_PREFIX) and os.path.isfile(lfn) \
                and not os.path.exists(local):
            raise SeproxyError(
                f"arguments in the old order? seproxy put takes LFN LOCAL SE, as "
                f"dirac-dms-add-file: seproxy put {local} {lfn} {se}")
        checked.append((lfn_of(lfn), local, se))
    for _lfn, local, _se in checked:
        if local != STDIO and not os.path.isfile(local):
            raise SeproxyError(f"{local} is not a file")
    return checked


def cmd_put(args: argparse.Namespace) -> int:
    jobs = _put_jobs(args)
    s = session(args)
    results = []
    for lfn, local, se in jobs:
        results.append(_put_one(s, lfn, local, se))
    emit(args, results, [f"{r['LFN']} stored on {r['SE']} ({r['Size']} bytes, adler32 "
                         f"{r['Adler32']}{_verdict(r)})" for r in results])
    return 0


def _verdict(result: dict) -> str:
    return ", matches the storage" if result.get("StorageAdler32") else ", storage has no checksum"


def _put_one(s: Session, lfn: str, local: str, se: str) -> dict:
    s.check_se(se)
    name = os.path.basename(lfn)
    if not s.args.force and s.single(se, "exists", lfn):
        raise SeproxyError(f"{lfn} already exists on {se}: use -f to overwrite it")
    if local == STDIO:
        with _stdin_pipe() as (fd, adler_of), s.bars.bytes(f"upload {name}", None) as update:
            sent = s.transfer.sendFile(fd, f"putFile/{name}", progress=update)
            # a refused upload leaves the pump blocked on a full pipe: closing it ends the pump
            ours = adler_of() if sent.get("OK") else ""
        s.value("upload to the proxy", lambda: sent, se)
    else:
        ours = file_adler32(local)
        size = os.path.getsize(local)
        with s.bars.bytes(f"upload {name}", size) as update:
            s.value("upload to the proxy", lambda: s.transfer.sendFile(
                local, f"putFile/{name}", progress=update), se)
    with s.bars.waiting(f"uploadFile {name} -> {se}"):
        size = s.value("uploadFile", lambda: s.rpc.uploadFile(se, lfn), se)
    theirs = _storage_adler(s, se, lfn)
    if theirs and theirs != ours:
        raise SeproxyError(f"{lfn}: adler32 mismatch: sent {ours}, {se} has {theirs}")
    return {"LFN": lfn, "SE": se, "Size": size, "Adler32": ours, "StorageAdler32": theirs}


def _storage_adler(s: Session, se: str, lfn: str) -> str:
    meta = s.single(se, "getFileMetadata", lfn) or {}
    checksum = str(meta.get("Checksum") or "").lower()
    return checksum.zfill(8) if checksum else ""


# -- get ---------------------------------------------------------------------------------
def _get_jobs(args: argparse.Namespace) -> tuple[list[str], str, str | None]:
    items = list(args.items)
    if args.file:
        lfns = [lfn_of(row[0]) for row in read_list(args.file)]
        if not items or looks_like_lfn(items[0]):
            raise SeproxyError("get --file LIST takes the storage element: seproxy get --file LIST SE")
        se, rest = items[0], items[1:]
    else:
        lfns, se, rest = split_lfns_se(items, "get")
    if not lfns:
        raise SeproxyError("get: no LFN given")
    if len(rest) > 1:
        raise SeproxyError(f"get: unexpected arguments after the destination: {' '.join(rest[1:])}")
    dest = rest[0] if rest else None
    if dest is not None and args.directory:
        raise SeproxyError("get: give either DEST or -D DIR, not both")
    return lfns, se, args.directory or dest


def _destination(lfn: str, dest: str | None, several: bool, force: bool) -> str:
    name = os.path.basename(lfn)
    if dest == STDIO:
        return STDIO
    if dest is None:
        path = Path(name)
    elif several or Path(dest).is_dir() or dest.endswith("/"):
        if not Path(dest).is_dir():
            raise SeproxyError(f"cannot write into {dest}: no such directory")
        path = Path(dest) / name
    else:
        path = Path(dest)
    parent = path.parent
    if not parent.is_dir():
        raise SeproxyError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise SeproxyError(f"cannot write {path}: directory {parent} is not writable")
    if path.exists() and not force:
        raise SeproxyError(f"{path} exists: use -f to overwrite it")
    return str(path)


def cmd_get(args: argparse.Namespace) -> int:
    lfns, se, dest = _get_jobs(args)
    targets = [_destination(lfn, dest, len(lfns) > 1, args.force) for lfn in lfns]
    s = session(args)
    s.check_se(se)
    results = [_get_one(s, lfn, se, target) for lfn, target in zip(lfns, targets, strict=False)]
    to_stdout = STDIO in targets
    emit(args, results, [f"{r['LFN']} -> {r['Path']} ({r['Size']} bytes, adler32 {r['Adler32']}"
                         f"{_verdict(r)})" for r in results],
         stream=sys.stderr if to_stdout and not args.json else None)
    return 0


def _get_one(s: Session, lfn: str, se: str, target: str) -> dict:
    name = os.path.basename(lfn)
    meta = s.single(se, "getFileMetadata", lfn) or {}
    size = meta.get("Size")
    theirs = str(meta.get("Checksum") or "").lower()
    theirs = theirs.zfill(8) if theirs else ""
    with s.bars.waiting(f"prepareFile {name} on the proxy"):
        s.value("prepareFile", lambda: s.rpc.prepareFile(se, lfn), se)

    def receive(sink: BinaryIO) -> _Adler:
        counted = _Adler(sink)
        with s.bars.bytes(f"download {name}", size) as update:
            s.value("download from the proxy", lambda: s.transfer.receiveFile(
                counted, f"getFile/{name}", progress=update), se)
        if theirs and counted.hex != theirs:
            raise SeproxyError(f"{lfn}: adler32 mismatch: received {counted.hex}, {se} has "
                               f"{theirs}; nothing written")
        return counted

    if target == STDIO:
        counted = receive(sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        with atomic_write(target) as sink:  # renamed only once complete and checked
            counted = receive(sink)
    return {"LFN": lfn, "SE": se, "Path": "(stdout)" if target == STDIO else target,
            "Size": counted.size, "Adler32": counted.hex, "StorageAdler32": theirs}


# -- namespace commands --------------------------------------------------------------------
def _namespace_command(args: argparse.Namespace, usage: str) -> tuple[Session, list[str], str]:
    """``LFN [LFN ...] SE`` checked, then the session (SE checked too)."""
    lfns, se, rest = split_lfns_se(args.items, args.command)
    if rest or not lfns:
        raise SeproxyError(f"usage: {usage}")
    s = session(args)
    s.check_se(se)
    return s, lfns, se


def _meta_line(path: str, meta: dict, long: bool, is_dir: bool) -> str:
    if not long:
        return path + ("/" if is_dir else "")
    mtime = meta.get("ModTime")
    when = (mtime.strftime("%Y-%m-%d %H:%M") if isinstance(mtime, datetime.datetime) else
            datetime.datetime.fromtimestamp(float(mtime), datetime.UTC).strftime("%Y-%m-%d %H:%M")
            if isinstance(mtime, (int, float)) else str(mtime or "-"))
    kind = "d" if is_dir else "-"
    size = "-" if is_dir else str(meta.get("Size", "?"))
    checksum = "" if is_dir else str(meta.get("Checksum") or "")
    return f"{kind} {size:>12} {when:16} {checksum:8} {path}{'/' if is_dir else ''}"


def cmd_ls(args: argparse.Namespace) -> int:
    s, lfns, se = _namespace_command(args, "seproxy ls [-l] [-r] LFN [LFN ...] SE")
    listing: dict[str, Any] = {}
    lines: list[str] = []
    todo = list(lfns)
    while todo:
        directory = todo.pop(0)
        value = s.single(se, "listDirectory", directory) or {}
        files, subdirs = value.get("Files", {}), value.get("SubDirs", {})
        listing[directory] = {"Files": files, "SubDirs": subdirs}
        if args.recursive or len(lfns) > 1:
            lines.append(f"{directory}:")
        for path in sorted(subdirs):
            lines.append(_meta_line(path if args.recursive else os.path.basename(path),
                                    subdirs[path], args.long, True))
        for path in sorted(files):
            lines.append(_meta_line(path if args.recursive else os.path.basename(path),
                                    files[path], args.long, False))
        if args.recursive:
            todo[:0] = sorted(subdirs)
    emit(args, listing, lines)
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    s, lfns, se = _namespace_command(args, "seproxy stat LFN [LFN ...] SE")
    found: dict[str, Any] = {}
    lines: list[str] = []
    for lfn in lfns:
        value = s.storage(se, "getFileMetadata", [lfn])
        if lfn in value.get("Failed", {}):
            directory = s.storage(se, "getDirectoryMetadata", [lfn])
            if lfn in directory.get("Failed", {}):
                raise SeproxyError(f"{lfn}: {s.explain(str(value['Failed'][lfn]), se)}")
            meta = directory["Successful"][lfn]
        else:
            meta = value["Successful"][lfn]
        found[lfn] = meta
        lines.append(f"{lfn}:")
        lines += [f"  {key:<14}{meta[key]}" for key in sorted(meta)]
    emit(args, found, lines)
    return 0


def cmd_mkdir(args: argparse.Namespace) -> int:
    s, lfns, se = _namespace_command(args, "seproxy mkdir LFN [LFN ...] SE")
    for lfn in lfns:
        s.single(se, "createDirectory", lfn)
    emit(args, {"Successful": {lfn: True for lfn in lfns}, "Failed": {}},
         [f"{lfn}/ created on {se}" for lfn in lfns])
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    s, lfns, se = _namespace_command(args, "seproxy rm [-r] LFN [LFN ...] SE")
    lines = []
    removed: dict[str, Any] = {}
    for lfn in lfns:
        if args.recursive and s.single(se, "isDirectory", lfn):
            removed[lfn] = s.single(se, "removeDirectory", lfn, recursive=True)
            lines.append(f"{lfn}/ removed from {se}")
        else:
            removed[lfn] = s.single(se, "removeFile", lfn)
            lines.append(f"{lfn} removed from {se}")
    emit(args, {"Successful": removed, "Failed": {}}, lines)
    return 0


# -- http-url, call -------------------------------------------------------------------------
def cmd_http_url(args: argparse.Namespace) -> int:
    lfns = [lfn_of(item) for item in args.lfn]
    s = session(args)
    result = s.retry("prepareFileForHTTP", lambda: s.rpc.prepareFileForHTTP(
        lfns if len(lfns) > 1 else lfns[0]))
    value = check(result, "prepareFileForHTTP: ")
    if args.json:
        print(to_json({k: v for k, v in result.items() if k != "rpcStub"}))
        return 0 if not value.get("Failed") else 2
    for lfn, reason in value.get("Failed", {}).items():
        print(f"ERROR {lfn}: {s.explain(str(reason), None)}", file=sys.stderr)
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
    s = session(args)
    positional = [_parse_arg(a) for a in args.args]
    keywords: dict[str, Any] = {}
    for item in args.kw:
        key, sep, value = item.partition("=")
        if not sep:
            raise SeproxyError(f"--kw needs NAME=VALUE, not {item!r}")
        keywords[key] = _parse_arg(value)
    value = s.value(args.method, lambda: s.rpc.callProxyMethod(args.se, args.method, positional,
                                                               keywords), args.se)
    print(to_json(value))
    failed = value.get("Failed") if isinstance(value, dict) else None
    return 2 if failed else 0


# -- parser ----------------------------------------------------------------------------------
def _complete_ses(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    """argcomplete: the storage elements of the local configuration."""
    try:
        return [se for se in load_config(parsed_args).getSections("/Resources/StorageElements")
                if se.startswith(prefix)]
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []


def add_client_options(parser: argparse.ArgumentParser, *, url_positional: bool = False) -> None:
    add_common_options(parser)
    if url_positional:
        parser.add_argument("url_arg", metavar="URL",
                            help="service URL, e.g. dips://host:9139/DataManagement/"
                            "StorageElementProxy (or System/Service from the configuration)")
    else:
        parser.add_argument("--url", help="StorageElementProxy URL (default: "
                            "/Systems/DataManagement/URLs/StorageElementProxy)")
    parser.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    parser.add_argument("--proxy", metavar="FILE", help="proxy to present (default: "
                        "$X509_USER_PROXY, /tmp/x509up_u<uid>, else <data dir>/proxy.pem)")
    parser.add_argument("--host-cert", action="store_true",
                        help="present the host certificate instead of a user proxy "
                        "(operators; never the default)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="network timeout of each call (default 600)")
    parser.add_argument("--retries", type=int, default=0, metavar="N",
                        help="try again up to N times when the connection fails (default 0)")


def register(subparsers: argparse._SubParsersAction) -> None:
    def client_parser(name: str, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help_text, description=help_text)
        add_client_options(parser, **kwargs)
        return parser

    def items(parser: argparse.ArgumentParser, help_text: str) -> None:
        action = parser.add_argument("items", metavar="ARG", nargs="*", help=help_text)
        action.completer = _complete_ses  # type: ignore[attr-defined]

    ping = client_parser("ping", "check that a DISET service answers (version, uptime, load)",
                         url_positional=True)
    ping.set_defaults(func=cmd_ping)
    whoami = client_parser("whoami", "show how a DISET service sees you (DN, user, group, "
                           "properties)", url_positional=True)
    whoami.set_defaults(func=cmd_whoami)

    put = client_parser("put", "upload LOCAL (- for standard input) to LFN on SE through the "
                        "proxy: seproxy put LFN LOCAL SE (dirac-dms-add-file's order)")
    items(put, "LFN LOCAL SE")
    put.add_argument("-f", "--force", action="store_true", help="overwrite an existing LFN")
    put.add_argument("--file", metavar="LIST", help="a file of 'LFN LOCAL SE' lines (- for stdin)")
    put.add_argument("--no-progress", action="store_true", help="no progress bar")
    put.set_defaults(func=cmd_put)

    get = client_parser("get", "download LFN(s) from SE through the proxy: seproxy get LFN "
                        "[LFN ...] SE [DEST] (DEST: file, directory, or - for standard output)")
    items(get, "LFN [LFN ...] SE [DEST]")
    get.add_argument("-D", "--dir", dest="directory", metavar="DIR",
                     help="directory to write into (default: the current directory)")
    get.add_argument("-f", "--force", action="store_true", help="overwrite existing local files")
    get.add_argument("--file", metavar="LIST", help="a file of LFNs, one per line (- for stdin)")
    get.add_argument("--no-progress", action="store_true", help="no progress bar")
    get.set_defaults(func=cmd_get)

    ls = client_parser("ls", "list directories on SE: seproxy ls [-l] [-r] LFN [LFN ...] SE")
    items(ls, "LFN [LFN ...] SE")
    ls.add_argument("-l", "--long", action="store_true", help="size, time and checksum")
    ls.add_argument("-r", "--recursive", action="store_true", help="list subdirectories too")
    ls.set_defaults(func=cmd_ls)

    stat = client_parser("stat", "metadata of files or directories on SE: seproxy stat LFN "
                         "[LFN ...] SE")
    items(stat, "LFN [LFN ...] SE")
    stat.set_defaults(func=cmd_stat)

    mkdir = client_parser("mkdir", "create directories on SE: seproxy mkdir LFN [LFN ...] SE")
    items(mkdir, "LFN [LFN ...] SE")
    mkdir.set_defaults(func=cmd_mkdir)

    rm = client_parser("rm", "remove files (-r: directories) on SE: seproxy rm [-r] LFN [LFN ...] SE")
    items(rm, "LFN [LFN ...] SE")
    rm.add_argument("-r", "--recursive", action="store_true", help="remove directories and "
                    "everything in them")
    rm.set_defaults(func=cmd_rm)

    http_url = client_parser("http-url", "stage LFN(s) on the proxy and print a one-time HTTP "
                             "download URL (several LFNs come as one tar)")
    http_url.add_argument("lfn", metavar="LFN", nargs="+")
    http_url.set_defaults(func=cmd_http_url)

    call = client_parser("call", "run a storage method on SE as yourself through the proxy "
                         "(callProxyMethod); ARGS are JSON or plain strings")
    call.add_argument("se", metavar="SE")
    call.add_argument("method", metavar="METHOD", help="e.g. exists, getFileMetadata, listDirectory")
    call.add_argument("args", metavar="ARGS", nargs="*")
    call.add_argument("--kw", action="append", default=[], metavar="NAME=VALUE",
                      help="keyword argument (JSON or string), e.g. --kw recursive=true")
    call.set_defaults(func=cmd_call)
