"""The ``HTTPS`` plugin (also ``PluginName = GFAL2_HTTPS``): WebDAV over HTTPS.

Protocols ``https`` and ``davs`` (DIRAC's names; ``http``/``dav`` without TLS).
Protocol section options: ``Host``, ``Port`` (default 443), ``Path`` (base path
on the server), ``Timeout`` (seconds for connect and each read, default 30),
``Retries`` (resumptions of an interrupted download, default 3), ``CAPath``
(directory of trusted CAs; default the service's CA directory).

========================  ==================================================
DIRAC call                HTTP
========================  ==================================================
exists, isFile, ...       ``PROPFIND`` Depth 0 (size, mtime, collection)
getFileMetadata           + ``HEAD`` with ``Want-Digest: adler32`` (checksum)
listDirectory             ``PROPFIND`` Depth 1
createDirectory           ``MKCOL`` (missing parents first)
removeFile / -Directory   ``DELETE``
getFile                   ``GET`` streamed into a temporary file; an
                          interrupted body is resumed with ``Range``; the
                          adler32 of the bytes is checked against the
                          server's ``Digest`` before the file is renamed
putFile                   ``PUT`` streamed to a hidden temporary name, its
                          ``Digest`` compared with the adler32 of the bytes
                          sent, then ``MOVE`` to the final name
========================  ==================================================

Credentials: the call's ``StorageCredentials`` -- a proxy (or certificate and
key) is the TLS client certificate, a ``bearer_token`` goes in
``Authorization: Bearer``. Connections are pooled per credential: one
``requests`` session per (credential digest, endpoint), never shared between
two credentials (:mod:`seproxy.storage.credfiles` gives each credential one
private path and digest).
"""

from __future__ import annotations

import email.utils
import errno
import hashlib
import os
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlparse

from seproxy.checksum import adler32
from seproxy.errors import StorageError
from seproxy.localfs import (
    BLOCK_SIZE,
    adler32_hex,
    atomic_write,
    is_temp_name,
    known_checksum,
    temp_name_for,
)
from seproxy.storage.credfiles import (
    credential_file,
    identity_of,
    proxy_bytes,
    read_credential,
)
from seproxy.storage.plugin_api import DISK_STATUS, ItemFailed, StorageBase, metadata
from seproxy.storage.plugins.remote_tree import RemoteTree
from seproxy.storage.utils import pfnunparse

try:  # optional dependency: pip install seproxy[https]
    import requests
    from requests.adapters import HTTPAdapter
except ImportError:  # pragma: no cover - reported when the plugin is built
    requests = None

ENOENT_TEXT = os.strerror(errno.ENOENT)
DAV = "{DAV:}"
PROPFIND_BODY = (
    '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop>'
    "<D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"
)
#: At most this many pooled sessions (one per credential and endpoint) are kept.
MAX_SESSIONS = 64

_SESSIONS: OrderedDict[str, Any] = OrderedDict()
_SESSIONS_LOCK = threading.Lock()


def _session(key: str, cert: Any, verify: Any, pool_size: int = 8) -> Any:
    """The pooled session of one credential at one endpoint (created on first use)."""
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = requests.Session()
            session.cert = cert
            session.verify = verify
            session.trust_env = False  # no proxies, netrc or CA bundle from the environment
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _SESSIONS[key] = session
            while len(_SESSIONS) > MAX_SESSIONS:
                # not closed here: a call may still be using it; its sockets close when
                # the last plugin holding it is gone
                _SESSIONS.popitem(last=False)
        else:
            _SESSIONS.move_to_end(key)
        return session


class _ChecksummingReader:
    """A file-like request body that streams a local file in big blocks and keeps
    its adler32 and length."""

    def __init__(self, fh: BinaryIO, size: int, block_size: int) -> None:
        self._fh, self._size, self._block = fh, size, block_size
        self.adler = 1
        self.sent = 0

    def __len__(self) -> int:
        return self._size

    def read(self, _size: int = -1) -> bytes:
        data = self._fh.read(self._block)
        if data:
            self.adler = adler32(data, self.adler)
            self.sent += len(data)
        return data


def _digest_header(value: str) -> str:
    """The adler32 in a ``Digest`` header (``adler32=0a1b2c3d``, maybe among others)."""
    for part in value.split(","):
        name, _, digest = part.strip().partition("=")
        if name.strip().lower() == "adler32" and digest:
            return digest.strip().lower().zfill(8)
    return ""


class HTTPSStorage(RemoteTree, StorageBase):
    """Files on a WebDAV server over HTTPS."""

    pluginName = "HTTPS"
    _INPUT_PROTOCOLS = ["file", "https", "davs", "http", "dav"]
    _OUTPUT_PROTOCOLS = ["https", "davs", "http", "dav"]

    def __init__(self, storageName: str, parameters: dict[str, Any], **kwargs: Any) -> None:
        if requests is None:
            raise StorageError("The HTTPS plugin needs requests (pip install 'seproxy[https]')")
        super().__init__(storageName, parameters, **kwargs)
        protocol = str(self.protocolParameters["Protocol"] or "https").lower()
        secure = protocol in ("https", "davs")
        self.scheme = "https" if secure else "http"
        self.timeout = float(self.option("Timeout"))
        self.retries = int(self.option("Retries"))
        self.block_size = int(self.option("BlockSize")) or BLOCK_SIZE
        port = self.protocolParameters["Port"] or ("443" if secure else "80")
        self.endpoint = f"{self.scheme}://{self.protocolParameters['Host']}:{port}"
        creds = self.credentials
        cert, identity, self._identity = self._client_certificate(creds)
        token = getattr(creds, "bearer_token", None)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        if token:
            identity += b"\0token\0" + token.encode()
            self._identity = self._identity or "a bearer token"
        verify: Any = True
        if secure:
            verify = str(self.option("CAPath") or self._ca_directory())
        key = hashlib.sha256(
            b"\0".join([self.endpoint.encode(), str(verify).encode(), identity])
        ).hexdigest()
        self.session = _session(key, cert, verify)

    def _client_certificate(self, creds: Any) -> tuple[Any, bytes, str]:
        """(requests' ``cert``, the bytes identifying the credential, its DN); an unusable
        credential fails every item (never an anonymous request)."""
        try:
            proxy = proxy_bytes(creds)
            if proxy is not None:
                _digest, path = credential_file(proxy)
                return str(path), proxy, identity_of(proxy)
            if creds.cert and creds.key:
                pem = read_credential(creds.cert, "certificate")
                key = read_credential(creds.key, "key")
                _digest, path = credential_file(pem + b"\n" + key)
                return str(path), pem + key, identity_of(pem)
        except StorageError as exc:
            self._credential_error = exc
        return None, b"", ""

    @staticmethod
    def _ca_directory() -> str:
        from seproxy.config import get_config
        from seproxy.security.locations import ca_directory

        return str(ca_directory(get_config()))

    # -- URLs ---------------------------------------------------------------------------
    def _path(self, url: str) -> str:
        path = unquote(urlparse(url).path) if "://" in url else url
        if not path.startswith("/"):
            raise StorageError(f"URL {url} has no absolute path", errno=errno.EINVAL)
        return path

    def _href(self, path: str) -> str:
        return self.endpoint + quote(path)

    # -- requests -----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,),
                 missing_ok: bool = False, **kwargs: Any) -> Any:
        """One request; the response if its status is in ``ok`` (or 404 with
        ``missing_ok``: then None); else StorageError/FileNotFoundError."""
        headers = dict(self._headers)
        headers.update(kwargs.pop("headers", {}))
        try:
            response = self.session.request(
                method, self._href(path), headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.exceptions.SSLError as exc:
            raise StorageError(
                f"{self.endpoint}: TLS handshake failed for {self._who()} ({exc})"
            ) from exc
        except requests.RequestException as exc:
            raise StorageError(f"{method} {self._href(path)} failed: {exc}") from exc
        if response.status_code in ok:
            return response
        if response.status_code == 404 and missing_ok:
            response.close()
            return None
        text = (response.text or "").strip()[:200] if not kwargs.get("stream") else ""
        response.close()
        status = f"{response.status_code} {response.reason}" + (f": {text}" if text else "")
        if response.status_code == 404:
            raise FileNotFoundError(errno.ENOENT, f"{ENOENT_TEXT} ({status})", path)
        if response.status_code in (401, 403):
            raise StorageError(f"{method} {path}: " + self._refused(status))
        raise StorageError(f"{method} {path}: {status}")

    def _who(self) -> str:
        return f"the credential of {self._identity}" if self._identity else "no credential"

    def _refused(self, what: str) -> str:
        return f"{self.endpoint} refused {self._who()}: {what}"

    def _propfind(self, path: str, depth: int) -> list[tuple[str, dict[str, Any]]] | None:
        response = self._request(
            "PROPFIND", path, ok=(207,), missing_ok=True,
            headers={"Depth": str(depth), "Content-Type": "application/xml"},
            data=PROPFIND_BODY,
        )
        if response is None:
            return None
        try:
            root = ET.fromstring(response.content)
        except ET.ParseError as exc:
            raise StorageError(f"PROPFIND {path}: unreadable answer ({exc})") from exc
        entries = []
        for item in root.iter(f"{DAV}response"):
            href = unquote(urlparse(item.findtext(f"{DAV}href", "")).path)
            prop = item.find(f".//{DAV}prop")
            if prop is None:
                continue
            is_dir = prop.find(f"{DAV}resourcetype/{DAV}collection") is not None
            modified = prop.findtext(f"{DAV}getlastmodified")
            try:
                mtime = email.utils.parsedate_to_datetime(modified).timestamp() if modified else 0.0
            except (TypeError, ValueError):
                mtime = 0.0
            size = int(prop.findtext(f"{DAV}getcontentlength") or 0)
            entries.append((href.rstrip("/") or "/", {"dir": is_dir, "size": size, "mtime": mtime}))
        return entries

    def _stat(self, path: str) -> dict[str, Any] | None:
        entries = self._propfind(path, 0)
        if entries is None:
            return None
        if not entries:
            raise StorageError(f"PROPFIND {path}: empty answer")
        return entries[0][1]

    def _existing(self, path: str, kind: str = "") -> dict[str, Any]:
        info = self._stat(path)
        if info is None:
            raise ItemFailed(ENOENT_TEXT)
        if kind == "file" and info["dir"]:
            raise ItemFailed(os.strerror(errno.EISDIR))
        if kind == "directory" and not info["dir"]:
            raise ItemFailed(os.strerror(errno.ENOTDIR))
        return info

    def _checksum(self, path: str) -> str:
        response = self._request("HEAD", path, headers={"Want-Digest": "adler32"})
        return _digest_header(response.headers.get("Digest", ""))

    def _meta(self, path: str, info: dict[str, Any], with_checksum: bool = True) -> dict[str, Any]:
        is_dir = info["dir"]
        return metadata(
            ModTime=info["mtime"],
            Size=0 if is_dir else info["size"],
            Mode=0o755 if is_dir else 0o644,
            Directory=is_dir,
            File=not is_dir,
            Checksum=self._checksum(path) if with_checksum and not is_dir else "",
            **DISK_STATUS,
        )

    # -- files --------------------------------------------------------------------------
    def _exists(self, url: str) -> bool:
        return self._stat(self._path(url)) is not None

    def _is_file(self, url: str) -> bool:
        return not self._existing(self._path(url))["dir"]

    def _file_metadata(self, url: str) -> dict[str, Any]:
        path = self._path(url)
        return self._meta(path, self._existing(path, "file"))

    def _file_size(self, url: str) -> int:
        return int(self._existing(self._path(url), "file")["size"])

    def _download(self, path: str, dest: str) -> int:
        """GET ``path`` into ``dest`` atomically, resuming an interrupted body with Range."""
        received, adler, expected_size, expected_sum = 0, 1, -1, ""
        attempts = 0
        with atomic_write(dest) as fh:
            while True:
                headers = {"Want-Digest": "adler32"}
                if received:
                    # a closed range: XrdHttp 5.5 answers an open one ("bytes=N-") with an
                    # empty 206 and "Content-Range: bytes N--1/<size>"
                    last = str(expected_size - 1) if expected_size > 0 else ""
                    headers["Range"] = f"bytes={received}-{last}"
                response = self._request("GET", path, ok=(200, 206), stream=True, headers=headers)
                with response:
                    if response.status_code == 206 and not response.headers.get(
                            "Content-Range", "").startswith(f"bytes {received}-"):
                        raise StorageError(
                            f"GET {path}: asked for bytes from {received}, got "
                            f"{response.headers.get('Content-Range', 'no Content-Range')}"
                        )
                    if response.status_code == 200 and received:  # Range ignored: start over
                        fh.seek(0)
                        fh.truncate()
                        received, adler = 0, 1
                    if response.status_code == 200:
                        expected_size = int(response.headers.get("Content-Length", -1))
                        expected_sum = _digest_header(response.headers.get("Digest", ""))
                    try:
                        for chunk in response.iter_content(self.block_size):
                            fh.write(chunk)
                            adler = adler32(chunk, adler)
                            received += len(chunk)
                        break
                    except (requests.exceptions.ChunkedEncodingError,
                            requests.exceptions.ConnectionError) as exc:
                        attempts += 1
                        if attempts > self.retries:
                            raise StorageError(
                                f"GET {path} interrupted after {received} bytes, "
                                f"{self.retries} resumptions failed: {exc}"
                            ) from exc
            if expected_size >= 0 and received != expected_size:
                raise StorageError(f"GET {path}: {received} of {expected_size} bytes received")
            expected_sum = expected_sum or self._checksum(path)
            if expected_sum and expected_sum != adler32_hex(adler):
                raise StorageError(
                    f"Checksum mismatch downloading {path}: server {expected_sum}, "
                    f"received {adler32_hex(adler)}"
                )
        return received

    def _get_file(self, url: str, local_dir: str) -> int:
        path = self._path(url)
        return self._download(path, os.path.join(local_dir, os.path.basename(path)))

    def _make_parents(self, path: str) -> None:
        parent = os.path.dirname(path.rstrip("/"))
        if parent in ("", "/") or self._stat(parent) is not None:
            return
        self._make_parents(parent)
        self._request("MKCOL", parent + "/", ok=(200, 201, 405))

    def _upload(self, source: Any, path: str, source_size: int = 0) -> int:
        src = str(source)
        if not os.path.isfile(src):
            raise FileNotFoundError(errno.ENOENT, ENOENT_TEXT, src)
        self._make_parents(path)
        tmp = temp_name_for(path)
        try:
            with open(src, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                body = _ChecksummingReader(fh, size, self.block_size)
                self._request("PUT", tmp, ok=(200, 201, 204), data=body,
                              headers={"Content-Type": "application/octet-stream"})
            local_sum = known_checksum(source) or adler32_hex(body.adler)
            if body.sent != size or (source_size and source_size != size):
                raise ItemFailed(
                    f"Source and destination file sizes do not match "
                    f"({source_size or size} vs {body.sent})."
                )
            stored_sum = self._checksum(tmp)
            if stored_sum and stored_sum != local_sum:
                raise StorageError(
                    f"Checksum mismatch uploading {path}: sent {local_sum}, stored {stored_sum}"
                )
            self._request("MOVE", tmp, ok=(200, 201, 204),
                          headers={"Destination": self._href(path), "Overwrite": "T"})
        except BaseException:
            try:
                self._request("DELETE", tmp, ok=(200, 204), missing_ok=True)
            except (OSError, StorageError):
                pass
            raise
        return size

    def _put_file(self, url: str, src: Any, source_size: int) -> int:
        return self._upload(src, self._path(url), int(source_size or 0))

    def _remove_file(self, url: str) -> bool:
        self._request("DELETE", self._path(url), ok=(200, 202, 204), missing_ok=True)
        return True

    # -- directories ----------------------------------------------------------------------
    def _is_directory(self, url: str) -> bool:
        return bool(self._existing(self._path(url))["dir"])

    def _create_directory(self, url: str) -> bool:
        path = self._path(url).rstrip("/")
        info = self._stat(path)
        if info is None:
            self._make_parents(path)
            self._request("MKCOL", path + "/", ok=(200, 201, 405))
        return True

    def _children(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """The entries of a directory (uploads in progress hidden); a missing path or a
        file fails the item."""
        entries = self._propfind(path.rstrip("/") + "/", 1)
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, ENOENT_TEXT, path)
        own = path.rstrip("/") or "/"
        if any(href == own and not info["dir"] for href, info in entries):
            raise ItemFailed(os.strerror(errno.ENOTDIR))
        return [(href, info) for href, info in entries
                if href != own and not is_temp_name(os.path.basename(href))]

    def _list_directory(self, url: str) -> dict[str, Any]:
        path = self._path(url)
        self._existing(path, "directory")
        base = pfnunparse({"Path": self.basePath})["Value"].rstrip("/")
        files: dict[str, Any] = {}
        dirs: dict[str, Any] = {}
        for href, info in self._children(path):
            key = "/" + os.path.relpath(href, base or "/").lstrip("/")
            if info["dir"]:
                dirs[key] = self._meta(href, info, with_checksum=False)
            else:
                files[key] = self._meta(href, info)
        return {"SubDirs": dirs, "Files": files}

    def _directory_metadata(self, url: str) -> dict[str, Any]:
        path = self._path(url)
        return self._meta(path, self._existing(path, "directory"), with_checksum=False)

    # -- RemoteTree hooks -----------------------------------------------------------------
    def _entries(self, path: str) -> list[tuple[str, bool, int]]:
        return [(href, info["dir"], info["size"]) for href, info in self._children(path)]

    def _missing(self, path: str) -> bool:
        return self._stat(path) is None

    def _remove_empty_directory(self, path: str) -> None:
        self._request("DELETE", path.rstrip("/") + "/", ok=(200, 202, 204), missing_ok=True)


class GFAL2HTTPSStorage(HTTPSStorage):
    """The same plugin under DIRAC's name, so a site's ``PluginName = GFAL2_HTTPS``
    section works unchanged (and reports that name)."""

    pluginName = "GFAL2_HTTPS"


__all__ = ["GFAL2HTTPSStorage", "HTTPSStorage"]
