"""The ``XROOT`` plugin: an XRootD server through the ``xrootd`` Python bindings.

Protocol section options: ``Host``, ``Port`` (default 1094), ``Path`` (base path
on the server), ``Timeout`` (seconds per request, default 30).

URLs are DIRAC's ``root://host:port//<Path>/<lfn>`` (double slash: absolute
server path). Transfers use the bindings' copy engine (``CopyProcess``):
uploads open the server file with POSC (persist on successful close, so an
interrupted upload leaves nothing under the final name) and verify the adler32
end to end; downloads go to a temporary local name renamed once complete and
verified. Checksums come from the server's ``adler32`` query.

Credentials: the call's ``StorageCredentials`` (a proxy, or a certificate and
key) authenticate with XRootD's GSI protocol through the URL's opaque data of
every connection this plugin opens, never through the environment; each
credential gets its own login name and connection
(:mod:`seproxy.storage.plugins.xroot_gsi`). Without a credential the client
logs in anonymously. Tested against xrootd 5.5.3 with GSI (``sec.protocol
gsi``, gridmap, ``acc.authdb`` per-user directories).

The XRootD client library keeps connection settings per process; on import this
module lowers ``ConnectionRetry`` to 1 so that a server that is down fails in
about ``ConnectionWindow`` seconds instead of minutes, and ``DataServerTTL`` to
60 s: each credential has connections of its own (a delegated proxy is a new
credential every call), each holding a socket until it has been idle that long.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from seproxy.errors import StorageError
from seproxy.localfs import is_temp_name, known_checksum, temp_name_for
from seproxy.returnvalues import DReturnType
from seproxy.storage.plugin_api import (
    DISK_STATUS,
    ItemFailed,
    StorageBase,
    metadata,
)
from seproxy.storage.plugins.remote_tree import RemoteTree
from seproxy.storage.plugins.xroot_gsi import gsi_login
from seproxy.storage.utils import pfnunparse

#: Idle connections to a data server are closed after this many seconds (XrdCl's
#: ``DataServerTTL``, process-wide; its default is 300).
IDLE_CONNECTION_SECONDS = 60

try:  # optional dependency: pip install seproxy[xroot]
    from XRootD import client as xrd_client
    from XRootD.client.flags import DirListFlags, MkDirFlags, QueryCode, StatInfoFlags

    xrd_client.EnvPutInt("ConnectionRetry", 1)
    xrd_client.EnvPutInt("ConnectionWindow", 10)
    # every credential has its own connections (per-call credentials, e.g. delegated
    # proxies, are new ones each call): close idle ones after a minute, not XrdCl's 5
    xrd_client.EnvPutInt("DataServerTTL", IDLE_CONNECTION_SECONDS)
except ImportError:  # pragma: no cover - reported when the plugin is built
    xrd_client = None

ENOENT_TEXT = os.strerror(errno.ENOENT)
_XRD_ENOENT = 3011


class XROOTStorage(RemoteTree, StorageBase):
    """Files on an XRootD server."""

    pluginName = "XROOT"
    _INPUT_PROTOCOLS = ["file", "root", "xroot"]
    _OUTPUT_PROTOCOLS = ["root"]

    def __init__(self, storageName: str, parameters: dict[str, Any], **kwargs: Any) -> None:
        if xrd_client is None:
            raise StorageError(
                "The XROOT plugin needs the xrootd bindings (pip install 'seproxy[xroot]')"
            )
        super().__init__(storageName, parameters, **kwargs)
        self.timeout = int(self.option("Timeout"))
        host = self.protocolParameters["Host"]
        port = self.protocolParameters["Port"] or "1094"
        try:
            login = gsi_login(self.credentials)
        except StorageError as exc:  # every item fails with it (never an anonymous login)
            login, self._credential_error = None, exc
        self._opaque = ""
        self._identity = login.identity if login is not None else ""
        if login is not None:
            # the pool key (user@host:port + the credential's digest-named path) and the
            # GSI credential of every connection this plugin opens: this call's, nobody else's
            host = f"{login.user}@{host}"
            self._opaque = "?" + login.opaque
        self.server = f"root://{host}:{port}"
        self.fs = xrd_client.FileSystem(f"{self.server}//{self._opaque}")

    # -- URLs ---------------------------------------------------------------------------
    def _double_slash(self, res: DReturnType) -> DReturnType:
        if not res["OK"]:
            return res
        url = res["Value"]
        scheme, sep, rest = url.partition("://")
        if sep and "/" in rest:
            netloc, path = rest.split("/", 1)
            res["Value"] = f"{scheme}://{netloc}//{path.lstrip('/')}"
        return res

    def getURLBase(self, withWSUrl: bool = False) -> DReturnType:
        return self._double_slash(super().getURLBase(withWSUrl))

    def constructURLFromLFN(self, lfn: str, withWSUrl: bool = False) -> DReturnType:
        return self._double_slash(super().constructURLFromLFN(lfn, withWSUrl))

    def _path(self, url: str) -> str:
        """The absolute server path of ``url`` (or of a bare path)."""
        if "://" in url:
            rest = url.split("://", 1)[1]
            path = "/" + rest.split("/", 1)[1].lstrip("/") if "/" in rest else "/"
        else:
            path = url
        path = path.split("?", 1)[0]
        if not path.startswith("/"):
            raise StorageError(f"URL {url} has no absolute path", errno=errno.EINVAL)
        return path

    def _url(self, path: str) -> str:
        return f"{self.server}/{path}{self._opaque}"

    # -- small wrappers -------------------------------------------------------------------
    def _explain(self, message: str) -> str:
        """``message`` with the credential named when the server refused it."""
        if "Auth failed" in message:
            who = f"the credential of {self._identity}" if self._identity else "an anonymous login"
            host = self.server.rsplit("@", 1)[-1].removeprefix("root://")
            return f"XRootD authentication at {host} failed for {who}: {message}"
        return message

    def _raise(self, status: Any, what: str) -> None:
        message = str(status.message).strip()
        if status.errno == _XRD_ENOENT:
            raise FileNotFoundError(errno.ENOENT, f"{ENOENT_TEXT} ({message})", what)
        raise StorageError(f"{what}: {self._explain(message)}")

    def _stat(self, path: str) -> Any | None:
        status, info = self.fs.stat(path, timeout=self.timeout)
        if status.ok:
            return info
        if status.errno == _XRD_ENOENT:
            return None
        self._raise(status, path)
        return None

    @staticmethod
    def _is_dir(info: Any) -> bool:
        return bool(info.flags & StatInfoFlags.IS_DIR)

    def _checksum(self, path: str) -> str:
        status, answer = self.fs.query(QueryCode.CHECKSUM, path, timeout=self.timeout)
        if not status.ok:
            self._raise(status, path)
        text = answer.decode(errors="replace").strip("\0 \n")
        name, _, value = text.partition(" ")
        return value.strip().lower() if name == "adler32" else ""

    def _meta(self, path: str, info: Any, with_checksum: bool = True) -> dict[str, Any]:
        is_dir = self._is_dir(info)
        mode = getattr(info, "mode", "") or ""
        try:
            mode_bits = int(mode, 8) & 0o7777 if mode else 0
        except ValueError:
            mode_bits = 0
        return metadata(
            ModTime=float(info.modtime),
            Size=int(info.size),
            Mode=mode_bits,
            Directory=is_dir,
            File=not is_dir,
            Checksum=self._checksum(path) if with_checksum and not is_dir else "",
            **DISK_STATUS,
        )

    def _listing(self, path: str) -> list[tuple[str, Any]]:
        status, listing = self.fs.dirlist(path, DirListFlags.STAT, timeout=self.timeout)
        if not status.ok:
            self._raise(status, path)
        return [(f"{path.rstrip('/')}/{entry.name}", entry.statinfo) for entry in listing]

    def _copy(self, source: str, target: str, checksum: str = "") -> None:
        """Copy with end-to-end adler32; ``checksum`` presets the source's (no extra read)."""
        process = xrd_client.CopyProcess()
        process.add_job(
            source,
            target,
            force=True,
            posc=False,
            mkdir=True,
            checksummode="end2end",
            checksumtype="adler32",
            checksumpreset=checksum,
            rmBadCksum=True,
            inittimeout=self.timeout,
            retry=0,
        )
        status = process.prepare()
        if status.ok:
            status, results = process.run()
            if status.ok and results and results[0].get("status") is not None:
                status = results[0]["status"]
        if not status.ok:
            message = self._explain(str(status.message).strip())
            # the opaque data (credential parameters) stays out of messages
            public = [url.split("?", 1)[0] for url in (source, target)]
            raise StorageError(f"copy {public[0]} -> {public[1]} failed: {message}")

    def _existing(self, path: str, kind: str = "") -> Any:
        """The stat info of ``path``; ``ItemFailed`` (DIRAC's text) if it is missing, or if
        ``kind`` is "file" and it is a directory, or "directory" and it is not."""
        info = self._stat(path)
        if info is None:
            raise ItemFailed(ENOENT_TEXT)
        if kind == "file" and self._is_dir(info):
            raise ItemFailed(os.strerror(errno.EISDIR))
        if kind == "directory" and not self._is_dir(info):
            raise ItemFailed(os.strerror(errno.ENOTDIR))
        return info

    # -- files --------------------------------------------------------------------------
    def _exists(self, url: str) -> bool:
        return self._stat(self._path(url)) is not None

    def _is_file(self, url: str) -> bool:
        return not self._is_dir(self._existing(self._path(url)))

    def _file_metadata(self, url: str) -> dict[str, Any]:
        path = self._path(url)
        return self._meta(path, self._existing(path, "file"))

    def _file_size(self, url: str) -> int:
        return int(self._existing(self._path(url), "file").size)

    def _download(self, path: str, dest: str) -> int:
        tmp = temp_name_for(dest)
        try:
            self._copy(self._url(path), tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return os.path.getsize(dest)

    def _get_file(self, url: str, local_dir: str) -> int:
        path = self._path(url)
        return self._download(path, os.path.join(local_dir, os.path.basename(path)))

    def _upload(self, source: Any, path: str, source_size: int = 0) -> int:
        src = str(source)
        if not os.path.isfile(src):
            raise FileNotFoundError(errno.ENOENT, ENOENT_TEXT, src)
        # Upload under a temporary name (POSC, verified adler32), then rename: readers never
        # see a partial file, and the server computes the checksum of a fresh file (xrootd
        # caches checksums per file with a one-second mtime, stale after a quick overwrite).
        tmp = temp_name_for(path)
        try:
            self._copy(os.path.abspath(src), self._url(tmp), known_checksum(source))
            info = self._stat(tmp)
            stored = int(info.size) if info is not None else -1
            if source_size and source_size != stored:
                raise ItemFailed(
                    f"Source and destination file sizes do not match ({source_size} vs {stored})."
                )
            status, _ = self.fs.mv(tmp, path, timeout=self.timeout)
            if not status.ok:
                self._raise(status, path)
        except BaseException:
            self.fs.rm(tmp, timeout=self.timeout)
            raise
        return stored

    def _put_file(self, url: str, src: Any, source_size: int) -> int:
        return self._upload(src, self._path(url), int(source_size or 0))

    def _remove_file(self, url: str) -> bool:
        path = self._path(url)
        status, _ = self.fs.rm(path, timeout=self.timeout)
        if not status.ok and status.errno != _XRD_ENOENT:
            self._raise(status, path)
        return True

    # -- directories ----------------------------------------------------------------------
    def _is_directory(self, url: str) -> bool:
        return self._is_dir(self._existing(self._path(url)))

    def _create_directory(self, url: str) -> bool:
        path = self._path(url)
        status, _ = self.fs.mkdir(path, MkDirFlags.MAKEPATH, timeout=self.timeout)
        if not status.ok:
            info = self._stat(path)
            if info is None:
                self._raise(status, path)
        return True

    def _list_directory(self, url: str) -> dict[str, Any]:
        path = self._path(url)
        base = pfnunparse({"Path": self.basePath})["Value"].rstrip("/")
        files: dict[str, Any] = {}
        dirs: dict[str, Any] = {}
        for full, info in self._listing(path):
            if is_temp_name(os.path.basename(full)):
                continue  # an upload in progress is not a file yet
            key = "/" + os.path.relpath(full, base or "/").lstrip("/")
            if self._is_dir(info):
                dirs[key] = self._meta(full, info, with_checksum=False)
            else:
                files[key] = self._meta(full, info)
        return {"SubDirs": dirs, "Files": files}

    def _directory_metadata(self, url: str) -> dict[str, Any]:
        path = self._path(url)
        return self._meta(path, self._existing(path, "directory"), with_checksum=False)

    # -- RemoteTree hooks -----------------------------------------------------------------
    def _entries(self, path: str) -> list[tuple[str, bool, int]]:
        return [(full, self._is_dir(info), int(info.size)) for full, info in self._listing(path)]

    def _missing(self, path: str) -> bool:
        return self._stat(path) is None

    def _remove_empty_directory(self, path: str) -> None:
        status, _ = self.fs.rmdir(path, timeout=self.timeout)
        if not status.ok and status.errno != _XRD_ENOENT:
            self._raise(status, path)


class GFAL2XROOTStorage(XROOTStorage):
    """The same plugin under DIRAC's name, so a site's ``PluginName = GFAL2_XROOT``
    section works unchanged (and reports that name)."""

    pluginName = "GFAL2_XROOT"


__all__ = ["GFAL2XROOTStorage", "XROOTStorage"]
