"""The storage plugin contract: ``StorageBase`` and what a plugin raises and returns.

Writing a plugin
================

Subclass ``StorageBase``, set ``pluginName`` and implement the *per-item*
primitives you support; the base class turns each into DIRAC's bulk method
(``exists(urls)`` -> ``S_OK({"Successful": {url: value}, "Failed": {url: reason}})``).
A primitive you do not implement answers ``S_ERROR("Storage.<name>: implement me!")``.

===========================  ==========================  ===========================
bulk method (**DIRAC API**)  primitive you implement     successful value
===========================  ==========================  ===========================
exists(urls)                 _exists(url)                bool
isFile(urls)                 _is_file(url)               bool
getFile(urls, localPath)     _get_file(url, local_dir)   bytes written locally
putFile({url: src}, size)    _put_file(url, src, size)   bytes stored
removeFile(urls)             _remove_file(url)           True
getFileMetadata(urls)        _file_metadata(url)         dict (see ``metadata``)
getFileSize(urls)            _file_size(url)             int
isDirectory(urls)            _is_directory(url)          bool
createDirectory(urls)        _create_directory(url)      True
removeDirectory(urls, rec)   _remove_directory(url, r)   True / {FilesRemoved, SizeRemoved}
listDirectory(urls)          _list_directory(url)        {"SubDirs": {}, "Files": {}}
getDirectoryMetadata(urls)   _directory_metadata(url)    dict
getDirectorySize(urls)       _directory_size(url)        {"Files", "Size", "SubDirs"}
getDirectory(urls, local)    _get_directory(url, local)  {"Files", "Size"}
putDirectory({url: dir})     _put_directory(url, dir)    {"Files", "Size"}
===========================  ==========================  ===========================

A primitive *raises* to fail one item: ``OSError`` and ``SeproxyError`` become
``str(exc)``, ``ItemFailed(value)`` puts ``value`` itself into ``Failed`` (for
DIRAC's dict-valued failures), anything else becomes ``"<Type>: <message>"``. A primitive
may return ``WithFailures(value, {other_url: reason})`` to report extra
per-entry failures (``listDirectory``). This is the only place where plugin
exceptions become DIRAC results. Primitives must stream: never hold a whole
file in memory (``seproxy.localfs`` has the helpers).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from seproxy.config import schema
from seproxy.errors import ItemFailed, SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, DReturnType
from seproxy.storage.credentials import StorageCredentials
from seproxy.storage.utils import checkArgumentFormat, pfnunparse


@dataclass
class WithFailures:
    """A primitive's successful value plus failures of other keys."""

    value: Any
    failures: dict[str, Any] = field(default_factory=dict)


def failure_reason(exc: BaseException) -> Any:
    """The one conversion from a plugin exception to a DIRAC ``Failed`` value."""
    if isinstance(exc, ItemFailed):
        return exc.value
    if isinstance(exc, (OSError, SeproxyError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


#: The status fields of a file on a disk-only storage (always online, never lost).
DISK_STATUS: dict[str, int] = {"Cached": 1, "Migrated": 0, "Lost": 0, "Unavailable": 0}


def metadata(**values: Any) -> dict[str, Any]:
    """DIRAC's common metadata template overridden by ``values``."""
    common: dict[str, Any] = {
        "Checksum": "",
        "Directory": False,
        "File": False,
        "Mode": 0o000,
        "Size": 0,
        "Accessible": True,
    }
    common.update(values)
    return common


def local_files(src_dir: Any) -> Iterator[tuple[str, str]]:
    """``(path, path relative to src_dir)`` of every file below a local directory."""
    if not os.path.isdir(src_dir):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(src_dir))
    for root, _dirs, names in os.walk(src_dir):
        for name in names:
            full = os.path.join(root, name)
            yield full, os.path.relpath(full, src_dir)


def transfer_tree(
    items: Iterable[tuple[str, str]],
    copy: Callable[[str, str], int],
    *,
    local_target: bool = False,
    require_files: bool = False,
) -> dict[str, int]:
    """Copy each ``(source, target)`` with ``copy`` (returns bytes); DIRAC's directory result.

    Any failure -- also while ``items`` is being produced -- fails the whole directory
    with DIRAC's ``{"Files": 0, "Size": 0}``. ``local_target`` creates the parent
    directories of local targets.
    """
    count = size = 0
    try:
        for source, target in items:
            if local_target:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            size += copy(source, target)
            count += 1
    except (OSError, SeproxyError, ItemFailed) as exc:
        raise ItemFailed({"Files": 0, "Size": 0}) from exc
    if require_files and not count:
        raise ItemFailed({"Files": 0, "Size": 0})
    return {"Files": count, "Size": size}


class StorageBase:
    """Base of every storage plugin (constructed per protocol section)."""

    PROTOCOL_PARAMETERS = ("Protocol", "Host", "Path", "Port", "SpaceToken", "WSUrl")
    pluginName = ""
    #: DIRAC's "srm" URL spelling (``proto://host:port/path``); S3 uses the standard one.
    srmSpecificParse = True

    def __init__(
        self,
        storageName: str,
        parameters: dict[str, Any],
        *,
        credentials: StorageCredentials | None = None,
    ) -> None:
        self.name = storageName
        self.protocolSectionName = ""
        self.credentials = credentials or StorageCredentials()
        self._allProtocolParameters = dict(parameters)
        self.protocolParameters: dict[str, Any] = {
            item: parameters.get(item, "") for item in self.PROTOCOL_PARAMETERS
        }
        proto = self.protocolParameters["Protocol"]
        self.protocolParameters["InputProtocols"] = self._protocol_list(
            parameters, "InputProtocols", "_INPUT_PROTOCOLS", [proto, "file"]
        )
        self.protocolParameters["OutputProtocols"] = self._protocol_list(
            parameters, "OutputProtocols", "_OUTPUT_PROTOCOLS", [proto]
        )
        self.basePath = parameters.get("Path", "")
        self.se: Any = None

    def option(self, name: str) -> Any:
        """Plugin option ``name`` of this protocol section, typed by ``seproxy.config.schema``
        (a subclass plugin, e.g. one from an entry point, reads the options its declared
        ancestor plugin declares)."""
        where = f"/Resources/StorageElements/{self.name}/{self.protocolSectionName or self.pluginName}"
        declared = (k.__dict__.get("pluginName") for k in type(self).__mro__)
        plugin = next((p for p in declared if p in schema.PLUGINS), self.pluginName)
        return schema.plugin_value(plugin, self._allProtocolParameters, name, where)

    def _protocol_list(
        self, parameters: dict[str, Any], option: str, attr: str, default: list[str]
    ) -> list[str]:
        if option in parameters:
            return [p for p in str(parameters[option]).replace(" ", "").split(",") if p]
        return list(getattr(self, attr, default))

    # -- configuration and URLs ---------------------------------------------------------
    def setStorageElement(self, se: Any) -> None:
        self.se = se

    def getName(self) -> str:
        return self.name

    def getParameters(self) -> dict[str, Any]:
        params = dict(self._allProtocolParameters)
        params.update(self.protocolParameters)
        params["StorageName"] = self.name
        params["PluginName"] = self.pluginName
        params["URLBase"] = self.getURLBase().get("Value", "")
        params["Endpoint"] = self.getEndpoint().get("Value", "")
        return params

    def getURLBase(self, withWSUrl: bool = False) -> DReturnType:
        parts = dict(self.protocolParameters)
        if not withWSUrl:
            parts["WSUrl"] = ""
        return pfnunparse(parts, srmSpecific=self.srmSpecificParse)

    def getEndpoint(self) -> DReturnType:
        parts = dict(self.protocolParameters, Path="")
        return pfnunparse(parts, srmSpecific=self.srmSpecificParse)

    def constructURLFromLFN(self, lfn: str, withWSUrl: bool = False) -> DReturnType:
        """The URL of ``lfn``; its first directory must be the VO (or SandBox, S3)."""
        top = lfn.split("/")[1] if "/" in lfn else ""
        vo = getattr(self.se, "vo", None)
        if top != vo and top not in ("SandBox", "S3"):
            return S_ERROR(f"LFN ({lfn}) path must start with VO name ({vo})")
        parts = dict(self.protocolParameters)
        if not withWSUrl:
            parts["WSUrl"] = ""
        parts["FileName"] = lfn.lstrip("/")
        return pfnunparse(parts, srmSpecific=self.srmSpecificParse)

    def getTransportURL(self, path: Any, protocols: list[str] | None) -> DReturnType:
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        if protocols and self.protocolParameters["Protocol"] not in protocols:
            return S_ERROR(errno.EPROTONOSUPPORT, "No native protocol requested")
        return S_OK({"Failed": {}, "Successful": {url: url for url in res["Value"]}})

    def isNativeURL(self, url: str) -> DReturnType:
        scheme = url.split(":", 1)[0] if ":" in url.split("/", 1)[0] else ""
        return S_OK(scheme == self.protocolParameters["Protocol"])

    @staticmethod
    def _addCommonMetadata(metadataDict: dict[str, Any]) -> dict[str, Any]:
        return metadata(**metadataDict)

    # -- the bulk plumbing ----------------------------------------------------------------
    def _check_url(self, url: str) -> None:
        """Hook: raise ``PathError`` for a URL the plugin must not touch (default: none)."""

    def _bulk(
        self,
        method: str,
        path: Any,
        primitive: Callable[..., Any] | None,
        *args: Any,
        dict_values: bool = False,
    ) -> DReturnType:
        if primitive is None:
            return S_ERROR(f"Storage.{method}: implement me!")
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        successful: dict[str, Any] = {}
        failed: dict[str, Any] = {}
        for url, value in res["Value"].items():
            try:
                self._check_url(url)
                out = primitive(url, value, *args) if dict_values else primitive(url, *args)
            except Exception as exc:  # noqa: BLE001 (the single conversion point)
                failed[url] = failure_reason(exc)
                continue
            if isinstance(out, WithFailures):
                failed.update(out.failures)
                out = out.value
            successful[url] = out
        return S_OK({"Failed": failed, "Successful": successful})

    _exists: Callable[..., Any] | None = None
    _is_file: Callable[..., Any] | None = None
    _get_file: Callable[..., Any] | None = None
    _put_file: Callable[..., Any] | None = None
    _remove_file: Callable[..., Any] | None = None
    _file_metadata: Callable[..., Any] | None = None
    _file_size: Callable[..., Any] | None = None
    _is_directory: Callable[..., Any] | None = None
    _create_directory: Callable[..., Any] | None = None
    _remove_directory: Callable[..., Any] | None = None
    _list_directory: Callable[..., Any] | None = None
    _directory_metadata: Callable[..., Any] | None = None
    _directory_size: Callable[..., Any] | None = None
    _get_directory: Callable[..., Any] | None = None
    _put_directory: Callable[..., Any] | None = None

    def exists(self, path: Any) -> DReturnType:
        return self._bulk("exists", path, self._exists)

    def isFile(self, path: Any) -> DReturnType:
        return self._bulk("isFile", path, self._is_file)

    def getFile(self, path: Any, localPath: Any = False) -> DReturnType:
        return self._bulk("getFile", path, self._get_file, localPath or os.getcwd())

    def putFile(self, path: Any, sourceSize: int = 0) -> DReturnType:
        if self._put_file is None:
            return S_ERROR("Storage.putFile: implement me!")
        if not isinstance(path, dict):
            return S_ERROR(
                f"{type(self).__name__}.putFile: path argument must be a dictionary "
                "(or a list of dictionary) { url : local path}"
            )
        return self._bulk("putFile", path, self._put_file, sourceSize, dict_values=True)

    def removeFile(self, path: Any) -> DReturnType:
        return self._bulk("removeFile", path, self._remove_file)

    def getFileMetadata(self, path: Any) -> DReturnType:
        return self._bulk("getFileMetadata", path, self._file_metadata)

    def getFileSize(self, path: Any) -> DReturnType:
        return self._bulk("getFileSize", path, self._file_size)

    def isDirectory(self, path: Any) -> DReturnType:
        return self._bulk("isDirectory", path, self._is_directory)

    def createDirectory(self, path: Any) -> DReturnType:
        return self._bulk("createDirectory", path, self._create_directory)

    def removeDirectory(self, path: Any, recursive: bool = False) -> DReturnType:
        return self._bulk("removeDirectory", path, self._remove_directory, bool(recursive))

    def listDirectory(self, path: Any) -> DReturnType:
        return self._bulk("listDirectory", path, self._list_directory)

    def getDirectoryMetadata(self, path: Any) -> DReturnType:
        return self._bulk("getDirectoryMetadata", path, self._directory_metadata)

    def getDirectorySize(self, path: Any) -> DReturnType:
        return self._bulk("getDirectorySize", path, self._directory_size)

    def getDirectory(self, path: Any, localPath: Any = False) -> DReturnType:
        return self._bulk("getDirectory", path, self._get_directory, localPath or os.getcwd())

    def putDirectory(self, path: Any) -> DReturnType:
        return self._bulk("putDirectory", path, self._put_directory, dict_values=True)

    def prestageFile(self, *args: Any, **kwargs: Any) -> DReturnType:
        return S_ERROR("Storage.prestageFile: implement me!")

    def prestageFileStatus(self, *args: Any, **kwargs: Any) -> DReturnType:
        return S_ERROR("Storage.prestageFileStatus: implement me!")

    def releaseFile(self, *args: Any, **kwargs: Any) -> DReturnType:
        return S_ERROR("Storage.releaseFile: implement me!")

    def getOccupancy(self, **kwargs: Any) -> DReturnType:
        return S_ERROR("Storage.getOccupancy: implement me!")


__all__ = [
    "DISK_STATUS",
    "ItemFailed",
    "StorageBase",
    "WithFailures",
    "failure_reason",
    "local_files",
    "metadata",
    "transfer_tree",
]
