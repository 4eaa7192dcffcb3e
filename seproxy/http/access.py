"""Key-based HTTP download of the files ``prepareFileForHTTP`` staged.

``GET /<key>`` (DIRAC 8.0.55's behaviour, PROTOCOL.md 10.7) with the defects fixed:

==========================  =================================================================
request                     answer
==========================  =================================================================
unknown, forged, expired    401 ``Invalid key provided, access denied``
or used-up key
GET of a single-use key     409 ``A download with this key is in progress`` (another
another GET is serving      instance's too: the claim is shared state)
state database unreachable  503 ``State database unavailable``
key directory unreadable    404 ``File not found``
one file                    200, the file (``socket.sendfile``), its own name
several files               200, a tar of them produced on the fly with :mod:`tarfile`
                            headers (no shell, no copy on disk), ``dirac_data_<id>.tar``
``HEAD``                    the same headers, no body, the key is not used up
``Range: bytes=a-b``        206 with ``Content-Range`` (also inside the tar); 416 when
                            unsatisfiable; ``If-Range`` honoured
anything else               501
==========================  =================================================================

Headers: ``Content-Type: application/octet-stream``, ``Content-Length``,
``Last-Modified`` (once), ``ETag``, ``Accept-Ranges: bytes`` and an RFC 6266
``Content-Disposition: attachment; filename="<ascii>"; filename*=UTF-8''<pct>``.

Keys are looked up in the server's ``register``: the
:class:`~seproxy.staging.keyregister.SignedKeyRegister` the service uses (keys verified
by their MAC, so any instance sharing the key secret and the HTTP cache serves them;
see :mod:`seproxy.staging.keys`), or DIRAC's in-process ``gRegister`` indexed by the
key's SHA-256. A key is single-use unless the server is multi-use: a GET claims it when
it starts and it is used up once a response carrying the last byte of the entity has
been sent completely (an interrupted download frees it: it can be resumed with
``Range``). The URL path is only ever a key, never a file path; files are opened
relative to the HTTP cache with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import logging
import os
import re
import socket
import ssl
import struct
import tarfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import quote

from seproxy import metrics
from seproxy.errors import KeyInUse, PathError, StateError
from seproxy.staging.keys import key_digest
from seproxy.staging.namespace import open_dir, open_regular

log = logging.getLogger(__name__)

INVALID_KEY = "Invalid key provided, access denied"
KEY_IN_USE = "A download with this key is in progress"
STATE_DOWN = "State database unavailable"
MAX_KEY_LENGTH = 1024
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the RFC 5987 UTF-8 form."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%' else "_" for ch in filename)
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='', errors='surrogateescape')}"
    return value


# -- the entity: one file, or a virtual tar built from segments -----------------------------
@dataclass
class _Segment:
    length: int
    data: bytes = b""
    fd: int = -1
    offset: int = 0


@dataclass
class Entity:
    """What a key serves: a name, a size, and segments (bytes or file ranges)."""

    name: str
    mtime: float
    segments: list[_Segment] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(seg.length for seg in self.segments)

    @property
    def etag(self) -> str:
        return f'"{self.size:x}-{int(self.mtime * 1e6):x}"'

    def close(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds.clear()

    def pieces(self, start: int, end: int) -> Any:
        """Yield ``_Segment`` slices covering bytes ``start..end`` (inclusive)."""
        pos = 0
        for seg in self.segments:
            seg_end = pos + seg.length
            if seg_end > start and pos <= end:
                lo = max(start, pos) - pos
                hi = min(end + 1, seg_end) - pos
                if seg.fd >= 0:
                    yield _Segment(hi - lo, fd=seg.fd, offset=seg.offset + lo)
                else:
                    yield _Segment(hi - lo, data=seg.data[lo:hi])
            pos = seg_end
            if pos > end:
                break


def open_entity(cache_root: str, directory: str) -> Entity:
    """Open the files of a key directory below ``cache_root`` (one file as is, several as
    a tar); every directory on the way is opened without following symlinks."""
    relative = os.path.relpath(os.path.abspath(directory), os.path.abspath(cache_root))
    parts = tuple(relative.split(os.sep))
    if relative.startswith("..") or relative == "." or len(parts) > 2:
        raise PathError("key directory outside the HTTP cache")
    dir_fd = open_dir(cache_root, parts)
    entity = Entity(name="", mtime=0.0)
    try:
        names = sorted(entry.name for entry in os.scandir(dir_fd)
                       if entry.is_file(follow_symlinks=False))
        opened: list[tuple[str, int, os.stat_result]] = []
        for name in names:
            fd = open_regular(dir_fd, name)
            entity.fds.append(fd)
            opened.append((name, fd, os.fstat(fd)))
    except BaseException:
        entity.close()
        raise
    finally:
        os.close(dir_fd)
    if not opened:
        raise FileNotFoundError("no file in the key directory")
    entity.mtime = max(st.st_mtime for _, _, st in opened)
    if len(opened) == 1:
        name, fd, st = opened[0]
        entity.name = name
        entity.segments.append(_Segment(st.st_size, fd=fd))
        return entity
    entity.name = f"dirac_data_{key_digest(os.path.basename(directory))[:12]}.tar"
    total = 0
    for name, fd, st in opened:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.type = st.st_size, int(st.st_mtime), 0o644, tarfile.REGTYPE
        header = info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")
        entity.segments.append(_Segment(len(header), data=header))
        entity.segments.append(_Segment(st.st_size, fd=fd))
        pad = -st.st_size % _BLOCK
        if pad:
            entity.segments.append(_Segment(pad, data=b"\0" * pad))
        total += len(header) + st.st_size + pad
    trailer = 2 * _BLOCK
    trailer += -(total + trailer) % _RECORD
    entity.segments.append(_Segment(trailer, data=b"\0" * trailer))
    return entity


_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` for a single satisfiable byte range; ``None`` to send the whole
    entity (no header, several ranges, or syntax not understood); ``False`` if unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            return False
        return max(size - length, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # RFC 7233 2.1: syntactically invalid, the header is ignored
    if start >= size:
        return False  # first-byte-pos beyond the entity: unsatisfiable (416)
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


class HttpStorageAccessHandler(BaseHTTPRequestHandler):
    """Serves ``GET``/``HEAD /<key>``; ``register`` and ``basePath`` are set per server."""

    #: The key register (:class:`~seproxy.staging.keyregister.KeyLookup`).
    register: ClassVar[Any] = None
    #: The HTTP cache directory (parent of every key directory).
    basePath: ClassVar[str] = ""  # noqa: N815 - DIRAC name
    #: Keep keys after a complete download (otherwise single-use, as DIRAC).
    multi_use: ClassVar[bool] = False
    #: Socket timeout for a request (seconds).
    timeout = 60
    server_version = "seproxy-http"

    def setup(self) -> None:
        super().setup()
        # the server's intake already read the request header without blocking a thread
        take = getattr(self.server, "take_header", None)
        header = take(self.request) if take is not None else None
        if header is not None:
            self.rfile.close()  # the socket's reader holds a reference that would keep it open
            self.rfile = io.BytesIO(header)

    def do_HEAD(self) -> None:  # http.server API
        self._serve(body=False)

    def do_GET(self) -> None:  # http.server API
        self._serve(body=True)

    # -- the request ---------------------------------------------------------------------
    def _serve(self, *, body: bool) -> None:
        key = self.path[1:].split("?", 1)[0].split("#", 1)[0]
        lease = None
        if 0 < len(key) <= MAX_KEY_LENGTH and self.register is not None:
            try:  # a single-use key serves one GET at a time: claimed when the GET starts
                lease = self.register.lookup(key, exclusive=body and not self.multi_use)
            except KeyInUse:
                self.send_error(409, KEY_IN_USE)
                return
            except StateError as exc:
                log.warning("HTTP key look-up: %s", exc)
                self.send_error(503, STATE_DOWN)
                return
        if lease is None:
            self.send_error(401, INVALID_KEY)
            return
        consumed = False
        try:
            try:
                entity = open_entity(self.basePath, str(lease.value))
            except (OSError, PathError) as exc:
                log.info("HTTP key directory unusable: %s", exc)
                self.send_error(404, "File not found")
                return
            try:
                consumed = self._send_entity(entity, body=body)
            finally:
                entity.close()
        finally:
            try:
                self.register.release(lease, consume=consumed and body and not self.multi_use)
            except StateError as exc:  # the files are removed all the same
                log.warning("HTTP key release: %s", exc)

    def _send_entity(self, entity: Entity, *, body: bool) -> bool:
        """Send headers and (for GET) bytes; True if the last byte was delivered."""
        size = entity.size
        wanted = parse_range(self.headers.get("Range"), size)
        if_range = self.headers.get("If-Range")
        last_modified = email.utils.formatdate(entity.mtime, usegmt=True)
        if wanted and if_range and if_range not in (entity.etag, last_modified):
            wanted = None
        if wanted is False:
            self.send_response(416, "Requested Range Not Satisfiable")
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        start, end = wanted if wanted else (0, size - 1)
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Last-Modified", last_modified)
        self.send_header("ETag", entity.etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Disposition", content_disposition(entity.name))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not body:
            return False
        if size == 0:
            return True
        try:
            for piece in entity.pieces(start, end):
                if piece.fd >= 0:
                    self._send_file_range(piece.fd, piece.offset, piece.length)
                else:
                    self.wfile.write(piece.data)
        except OSError as exc:  # the client went away: the key stays for a resume
            log.info("HTTP download interrupted: %s", exc)
            self.close_connection = True
            return False
        return end == size - 1

    def _send_file_range(self, fd: int, offset: int, count: int) -> None:
        if count <= 0:
            return
        sock = self.connection
        if isinstance(sock, ssl.SSLSocket):  # TLS: the kernel cannot send the file itself
            with os.fdopen(os.dup(fd), "rb") as fileobj:
                sent = sock.sendfile(fileobj, offset, count)
            if sent != count:
                raise OSError(f"short send: {sent} of {count} bytes (file changed?)")
            return
        # Plain TCP: blocking sendfile(2) in large pieces; a stalled client is cut off by
        # the kernel send timeout instead of a select() before every piece.
        timeout = sock.gettimeout()
        sock.settimeout(None)
        seconds = int(timeout or self.timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))
        try:
            out = sock.fileno()
            while count > 0:
                sent = os.sendfile(out, fd, offset, min(count, 1 << 30))
                if sent == 0:
                    raise OSError(f"file ended {count} bytes early (changed while sending?)")
                offset += sent
                count -= sent
        finally:
            sock.settimeout(timeout)

    # -- logging: never log a whole key ----------------------------------------------------
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        metrics.HTTP_DOWNLOADS.labels(str(getattr(code, "value", code))).inc()
        super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:  # http.server API
        line = format % args
        key = self.path[1:] if getattr(self, "path", "") else ""
        if len(key) > 6:
            line = line.replace(key, key[:6] + "...")
        log.info("%s %s", self.address_string(), line)

