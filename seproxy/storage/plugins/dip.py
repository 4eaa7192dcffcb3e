"""The ``DIP`` plugin: a remote DISET ``DataManagement/StorageElement`` service.

Protocol section: ``Protocol = dips`` (or ``dip``), ``Host``, ``Port`` (a comma
list: one is picked at random, as DIRAC does), ``Path`` = the service path
(``/DataManagement/StorageElement``), ``CheckSum`` (``no`` sends the transfer
token ``NoCheckSum``), ``Timeout`` (RPC timeout, seconds), ``RetryDelay`` (seconds
between connection attempts, DIRAC's 2 by default).

URLs are ``dips://host:port/DataManagement/StorageElement/<lfn>``: the service
maps everything after its name below its ``BasePath``. Calls go through
seproxy's ``RPCClient`` (``exists``, ``getMetadata``, ``remove``,
``createDirectory``, ``listDirectory``, ``removeDirectory``) and
``TransferClient`` (``sendFile``/``receiveFile``), with the caller's proxy
(``StorageCredentials.proxy_location()``) or host certificate.

Differences from DIRAC's DIP plugin, chosen so that every plugin answers the
same (see the conformance suite): ``listDirectory`` keys are LFN-style paths,
``getDirectorySize`` counts the direct entries, ``removeDirectory`` without
``recursive`` removes only the files directly inside, directory transfers go
file by file with real counts, ``sourceSize`` is checked before sending, and a
download is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Iterator
from typing import Any

from seproxy.config import get_config
from seproxy.errors import StorageError
from seproxy.localfs import atomic_write
from seproxy.storage.plugin_api import ItemFailed, StorageBase, local_files, transfer_tree
from seproxy.storage.utils import pfnunparse


class DIPStorage(StorageBase):
    """Files behind a DISET StorageElement service."""

    pluginName = "DIP"
    _INPUT_PROTOCOLS = ["file", "dip", "dips"]
    _OUTPUT_PROTOCOLS = ["dip", "dips"]

    def __init__(self, storageName: str, parameters: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(storageName, parameters, **kwargs)
        ports = [p.strip() for p in str(self.protocolParameters["Port"]).split(",") if p.strip()]
        random.shuffle(ports)
        self.protocolParameters["Port"] = ports[0] if ports else ""
        self.url = pfnunparse(dict(self.protocolParameters, Path=self.basePath))["Value"]
        self.checkSum = "CheckSum" if self.option("CheckSum") else "NoCheckSum"
        self.timeout = self.option("Timeout")
        self.retry_delay = self.option("RetryDelay")

    # -- clients --------------------------------------------------------------------------
    def _client_kwargs(self) -> dict[str, Any]:
        cfg = getattr(self.se, "config", None) or get_config()
        kwargs: dict[str, Any] = {"config": cfg, "timeout": self.timeout}
        if self.retry_delay:
            kwargs["retryDelay"] = self.retry_delay
        creds = self.credentials
        if creds.has_proxy:
            kwargs["proxyLocation"] = creds.proxy_location()
        elif creds.cert:
            kwargs["useCertificates"] = True
        return kwargs

    def _rpc(self, method: str, *args: Any) -> Any:
        from seproxy.rpc.client.base import RPCClient

        with RPCClient(self.url, **self._client_kwargs()) as client:
            result = getattr(client, method)(*args)
        if not result["OK"]:
            raise StorageError(result["Message"])
        return result.get("Value")

    def _transfer(self):  # TransferClient
        from seproxy.transfer.client import TransferClient

        return TransferClient(self.url, **self._client_kwargs())

    def _lfn(self, url: str) -> str:
        """The path below the service (``/dirac/...``) of a URL or of a bare path."""
        return url[len(self.url) :] if url.startswith(self.url) else url

    def _metadata(self, url: str) -> dict[str, Any] | None:
        value = self._rpc("getMetadata", url)
        if not value.get("Exists"):
            return None
        # DIRAC's service sets Directory=True for files too: derive both flags from Type
        kind = value.get("Type")
        return dict(value, File=kind == "File", Directory=kind == "Directory")

    # -- files --------------------------------------------------------------------------
    def _exists(self, url: str) -> bool:
        return bool(self._rpc("exists", url))

    def _is_file(self, url: str) -> bool:
        meta = self._metadata(url)
        if meta is None:
            raise ItemFailed("File does not exist")
        return meta.get("Type") == "File"

    def _file_metadata(self, url: str) -> dict[str, Any]:
        meta = self._metadata(self._lfn(url))
        if meta is None:
            raise ItemFailed("File does not exist")
        if meta.get("Type") != "File":
            raise ItemFailed("Supplied path is not a file")
        return meta

    def _file_size(self, url: str) -> int:
        return int(self._file_metadata(url)["Size"])

    def _download(self, url: str, dest: str) -> int:
        with atomic_write(dest) as sink:
            result = self._transfer().receiveFile(sink, url, self.checkSum)
            if not result["OK"]:
                raise StorageError(result["Message"])
        return os.path.getsize(dest)

    def _get_file(self, url: str, local_dir: str) -> int:
        return self._download(url, os.path.join(local_dir, os.path.basename(url)))

    def _upload(self, src: str, url: str, source_size: int = 0) -> int:
        if not os.path.isfile(src):
            raise ItemFailed("DIPStorage.__putFile: The source local file does not exist.")
        size = os.path.getsize(src)
        if source_size and source_size != size:
            raise ItemFailed(
                f"Source and destination file sizes do not match ({source_size} vs {size})."
            )
        result = self._transfer().sendFile(src, url, token=self.checkSum)
        if not result["OK"]:
            raise StorageError(result["Message"])
        return size

    def _put_file(self, url: str, src: Any, source_size: int) -> int:
        return self._upload(str(src), url, int(source_size or 0))

    def _remove_file(self, url: str) -> bool:
        self._rpc("remove", url, "")
        return True

    # -- directories ----------------------------------------------------------------------
    def _is_directory(self, url: str) -> bool:
        meta = self._metadata(url)
        if meta is None:
            raise ItemFailed("Path does not exist")
        return meta.get("Type") == "Directory"

    def _create_directory(self, url: str) -> bool:
        self._rpc("createDirectory", url)
        return True

    def _entries(self, url: str) -> dict[str, dict[str, Any]]:
        """``{child url: metadata}`` of a directory (its direct entries)."""
        listing = self._rpc("listDirectory", url, "l") or {}
        return {
            f"{url.rstrip('/')}/{name}": dict(
                meta, File=meta.get("Type") == "File", Directory=meta.get("Type") == "Directory"
            )
            for name, meta in listing.items()
        }

    def _list_directory(self, url: str) -> dict[str, Any]:
        files: dict[str, Any] = {}
        dirs: dict[str, Any] = {}
        for child, meta in self._entries(url).items():
            key = self._lfn(child)
            if meta.get("Type") == "Directory":
                dirs[key] = meta
            elif meta.get("Type") == "File":
                files[key] = meta
        return {"SubDirs": dirs, "Files": files}

    def _directory_metadata(self, url: str) -> dict[str, Any]:
        meta = self._metadata(url)
        if meta is None:
            raise ItemFailed("Directory does not exist")
        if meta.get("Type") != "Directory":
            raise ItemFailed("Supplied path is not a directory")
        return dict(meta, Directory=True, File=False)

    def _directory_size(self, url: str) -> dict[str, int]:
        files = size = subdirs = 0
        for meta in self._entries(url).values():
            if meta.get("Type") == "Directory":
                subdirs += 1
            else:
                files += 1
                size += int(meta.get("Size", 0))
        return {"Files": files, "Size": size, "SubDirs": subdirs}

    def _walk(self, url: str) -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        for child, meta in self._entries(url).items():
            if meta.get("Type") == "Directory":
                found += self._walk(child)
            else:
                found.append((child, int(meta.get("Size", 0))))
        return found

    def _remove_directory(self, url: str, recursive: bool) -> Any:
        if self._metadata(url) is None:
            return {"FilesRemoved": 0, "SizeRemoved": 0} if recursive else True
        if not recursive:
            for child, meta in self._entries(url).items():
                if meta.get("Type") == "File":
                    self._remove_file(child)
            return True
        files = self._walk(url)
        try:
            self._rpc("removeDirectory", url, "")
        except StorageError as exc:
            left = self._walk(url) if self._metadata(url) is not None else []
            done = [f for f in files if f not in left]
            raise ItemFailed(
                {"FilesRemoved": len(done), "SizeRemoved": sum(s for _, s in done)}
            ) from exc
        return {"FilesRemoved": len(files), "SizeRemoved": sum(s for _, s in files)}

    def _get_directory(self, url: str, local_dir: str) -> dict[str, int]:
        base = url.rstrip("/")
        target = os.path.join(local_dir, os.path.basename(base))

        def items() -> Iterator[tuple[str, str]]:
            if self._metadata(base) is None:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), url)
            for child, _size in self._walk(base):
                yield child, os.path.join(target, child[len(base) + 1 :])

        return transfer_tree(items(), self._download, local_target=True)

    def _put_directory(self, url: str, src_dir: Any) -> dict[str, int]:
        base = url.rstrip("/")
        items = ((full, f"{base}/{rel}") for full, rel in local_files(src_dir))
        return transfer_tree(items, self._upload)


__all__ = ["DIPStorage"]
