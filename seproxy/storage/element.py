"""``StorageElement``: DIRAC's storage facade (PROTOCOL.md 11.1).

``StorageElement(name, protocolSections=None, vo=None, *, config=None,
credentials=None)`` reads the SE definition (``seproxy.storage.factory``),
builds one plugin per protocol section with the caller's
``StorageCredentials`` and forwards the bulk methods to the plugins in
preference order. Every LFN is checked first (``utils.check_lfn``): a bad one
gets its own ``Failed`` reason and reaches no plugin.

``StorageElement.PUBLIC_METHODS`` lists the methods a remote caller may run by
name (no local paths involved); ``TRANSFER_METHODS`` are the ones that read or
write local files and must only be driven by the service itself.
"""

from __future__ import annotations

import errno
import functools
import logging
import sys
from typing import Any

from seproxy.config import Config, get_config, schema
from seproxy.errors import ConfigError, PathError, StorageError
from seproxy.returnvalues import S_ERROR, S_OK, DReturnType
from seproxy.storage.credentials import StorageCredentials
from seproxy.storage.factory import operations_value, resolve_storage, site_storage_elements
from seproxy.storage.info import StorageElementInfo, enometh
from seproxy.storage.plugins import StorageBase, load_plugin
from seproxy.storage.utils import check_lfn, checkArgumentFormat

log = logging.getLogger(__name__)

_NO_PLUGIN = (
    "No storage plugins matching the requirements"
    + " " * 43
    + "(operation %s protocols %s inputProtocol %s)"
)


def _index(item: Any, items: list[Any]) -> int:
    return items.index(item) if item in items else sys.maxsize


class StorageElement(StorageElementInfo):
    """One storage element for one VO and one set of credentials (**DIRAC API**)."""

    # DIRAC name -> plugin method name
    _EQUIVALENT = {
        "exists": "exists",
        "isFile": "isFile",
        "getFile": "getFile",
        "putFile": "putFile",
        "replicateFile": "putFile",
        "getFileMetadata": "getFileMetadata",
        "getFileSize": "getFileSize",
        "removeFile": "removeFile",
        "prestageFile": "prestageFile",
        "prestageFileStatus": "prestageFileStatus",
        "releaseFile": "releaseFile",
        "isDirectory": "isDirectory",
        "getDirectoryMetadata": "getDirectoryMetadata",
        "getDirectorySize": "getDirectorySize",
        "listDirectory": "listDirectory",
        "removeDirectory": "removeDirectory",
        "createDirectory": "createDirectory",
        "putDirectory": "putDirectory",
        "getDirectory": "getDirectory",
    }
    _DEFAULT_ARGS: dict[str, dict[str, Any]] = {
        "putFile": {"sourceSize": 0},
        "getFile": {"localPath": False},
        "prestageFile": {"lifetime": 86400},
        "removeDirectory": {"recursive": False},
        "getDirectory": {"localPath": False},
    }
    _DEPRECATED_ARGS = ("singleFile", "singleDirectory")

    #: Callable by name for a remote client: no local path is read or written.
    PUBLIC_METHODS = frozenset(
        {
            "exists",
            "isFile",
            "isDirectory",
            "getFileSize",
            "getFileMetadata",
            "getDirectoryMetadata",
            "getDirectorySize",
            "listDirectory",
            "createDirectory",
            "removeFile",
            "removeDirectory",
            "prestageFile",
            "prestageFileStatus",
            "releaseFile",
            "getURL",
            "getStatus",
            "isValid",
            "getStorageParameters",
            "getChecksumType",
            "getProtocolSections",
            "getLocalProtocolSections",
            "getRemoteProtocolSections",
            "storageElementName",
            "getStorageElementName",
            "getLFNFromURL",
        }
    )
    #: Read or write local files: only for the service's own use (its cache), never by name.
    TRANSFER_METHODS = frozenset(
        {"getFile", "putFile", "replicateFile", "getDirectory", "putDirectory"}
    )

    def __init__(
        self,
        name: str,
        protocolSections: Any = None,
        vo: str | None = None,
        *,
        config: Config | None = None,
        credentials: StorageCredentials | None = None,
    ) -> None:
        self._cfg = config if config is not None else get_config()
        self.credentials = credentials or StorageCredentials()
        self.vo = vo or self.credentials.vo or schema.value(self._cfg, "/DIRAC/VirtualOrganization")
        self.name = name
        self.valid = True
        self.errorReason = ""
        self.options: dict[str, Any] = {}
        self.storages: dict[str, StorageBase] = {}
        self.localProtocolSections: list[str] = []
        self.remoteProtocolSections: list[str] = []
        self.turlProtocols: list[str] = []
        if isinstance(protocolSections, str):
            protocolSections = [protocolSections]
        try:
            self._build(list(protocolSections or []))
        except (ConfigError, StorageError) as exc:
            self.valid = False
            self.errorReason = str(exc)
        self.localAccessProtocolList: list[str] = []
        self.localWriteProtocolList: list[str] = []
        self.localStageProtocolList: list[str] = []
        if self.valid:
            self._protocol_lists()

    @property
    def config(self) -> Config:
        """The configuration this SE was read from (plugins use it for their own clients)."""
        return self._cfg

    # -- construction -------------------------------------------------------------------
    def _build(self, protocol_sections: list[str]) -> None:
        definition = resolve_storage(self._cfg, self.name, self.vo or None, protocol_sections)
        self.name = definition.name
        self.options = definition.options
        for section, details in definition.protocols.items():
            plugin_name = details.get("PluginName") or section
            try:
                cls = load_plugin(plugin_name)
                storage = cls(self.name, details, credentials=self.credentials)
            except Exception as exc:  # noqa: BLE001 (a broken section must not hide the others)
                log.warning("StorageElement %s: cannot instantiate %s: %s", self.name, section, exc)
                continue
            storage.protocolSectionName = section
            storage.setStorageElement(self)
            self.storages[section] = storage
            if section in definition.local_sections:
                self.turlProtocols.append(details["Protocol"])
                self.localProtocolSections.append(section)
            if section in definition.remote_sections:
                self.remoteProtocolSections.append(section)
        if not self.storages:
            raise StorageError(
                "StorageFactory.getStorages: Failed to instantiate any storage protocols."
            )

    def _protocol_lists(self) -> None:
        def ops(option: str, default: list[str]) -> list[str]:
            return operations_value(self._cfg, self.vo, f"DataManagement/{option}", default)

        access = self.options.get("AccessProtocols")
        self.localAccessProtocolList = access or ops("AccessProtocols", ["srm", "dips"])
        self.localWriteProtocolList = self.options.get("WriteProtocols") or ops(
            "WriteProtocols", ["srm", "dips"]
        )
        stage = self.options.get("StageProtocols")
        if isinstance(stage, str):
            stage = [s.strip() for s in stage.split(",") if s.strip()]
        self.localStageProtocolList = (
            stage or access or ops("StageProtocols", []) or self.localAccessProtocolList
        )

    # -- execution ----------------------------------------------------------------------
    def getURL(self, lfn: Any, protocol: Any = False, replicaDict: Any = None) -> DReturnType:
        if not protocol:
            protocols = self.turlProtocols
        elif isinstance(protocol, list):
            protocols = protocol
        else:
            protocols = [protocol]
        return self._execute("getTransportURL", lfn, protocols=protocols)

    def __getattr__(self, name: str) -> Any:
        method = StorageElement._EQUIVALENT.get(name)
        if method is None or name.startswith("_"):
            raise AttributeError(f"StorageElement does not have a method '{name}'")
        return functools.partial(self._execute, method)

    def _is_local_se(self) -> bool:
        site = schema.value(self._cfg, "/LocalSite/Site")
        return self.name in site_storage_elements(self._cfg, site)

    def _filter_plugins(
        self, method: str, protocols: list[str] | None, input_protocol: str | None
    ) -> list[StorageBase]:
        local_se = self._is_local_se()
        if method in self.readMethods + self.checkMethods:
            allowed = self.localAccessProtocolList
        elif method in self.stageMethods:
            allowed = self.localStageProtocolList
        elif method in self.removeMethods + self.writeMethods:
            allowed = self.localWriteProtocolList
        else:
            plugins = list(self.storages.values())
            if protocols:
                wanted = set(protocols)
                plugins = [
                    p
                    for p in plugins
                    if set(p.protocolParameters.get("OutputProtocols", [])) & wanted
                ]
            return sorted(
                plugins,
                key=lambda p: (
                    _index(p.protocolParameters["Protocol"], self.localAccessProtocolList),
                    p.protocolSectionName
                    in (self.remoteProtocolSections if local_se else self.localAccessProtocolList),
                ),
            )
        potential = list(set(allowed) & set(protocols)) if protocols else allowed
        plugins = []
        for section, plugin in self.storages.items():
            params = plugin.getParameters()
            if section not in self.remoteProtocolSections and not local_se:
                continue
            if params["Protocol"] not in potential:
                continue
            if params.get("Access", "").lower() == "remoteonly" and local_se:
                continue
            if (
                method == "putFile"
                and input_protocol
                and input_protocol not in params["InputProtocols"]
            ):
                continue
            plugins.append(plugin)
        return sorted(
            plugins,
            key=lambda p: (
                _index(p.protocolParameters["Protocol"], allowed),
                p.protocolSectionName in self.remoteProtocolSections,
            ),
        )

    def _execute(self, method: str, lfn: Any, *args: Any, **kwargs: Any) -> DReturnType:
        if args:
            defaults = list(self._DEFAULT_ARGS.get(method, {}))
            if defaults:
                kwargs[defaults[0]] = args[0]
                args = args[1:]
        for deprecated in self._DEPRECATED_ARGS:
            kwargs.pop(deprecated, None)
        for arg, value in self._DEFAULT_ARGS.get(method, {}).items():
            kwargs.setdefault(arg, value)
        res = checkArgumentFormat(lfn)
        if not res["OK"]:
            return res
        lfn_dict: dict[str, Any] = res["Value"]
        res = self.isValid(operation=method)
        if not res["OK"]:
            return res
        input_protocol = kwargs.pop("inputProtocol", None)
        protocols = kwargs.get("protocols")
        if method != "getTransportURL":
            kwargs.pop("protocols", None)
        kwargs.pop("replicaDict", None)

        failed: dict[str, Any] = {}
        successful: dict[str, Any] = {}
        for name in list(lfn_dict):
            try:
                check_lfn(name, self.vo)
            except PathError as exc:
                failed[name] = str(exc)
                del lfn_dict[name]
        plugins = self._filter_plugins(method, protocols, input_protocol)
        if not plugins:
            return S_ERROR(errno.EPROTONOSUPPORT, _NO_PLUGIN % (method, protocols, input_protocol))
        for storage in plugins:
            if not lfn_dict:
                break
            url_dict: dict[str, str] = {}
            for name in lfn_dict:
                built = storage.constructURLFromLFN(name, withWSUrl=True)
                if built["OK"]:
                    url_dict[built["Value"]] = name
                else:
                    failed[name] = (
                        f"{failed[name]} {built['Message']}" if name in failed else built["Message"]
                    )
            if not url_dict:
                continue
            fcn = getattr(storage, method, None)
            if not callable(fcn):
                return enometh(
                    "SE.__executeMethod: unable to invoke %s, it isn't a member function of storage"
                )
            try:
                res = fcn({url: lfn_dict[name] for url, name in url_dict.items()}, *args, **kwargs)
            except Exception as exc:  # a plugin bug fails its LFNs, not the call
                log.exception("plugin %s.%s raised", storage.pluginName, method)
                res = S_ERROR(f"{storage.pluginName} plugin raised {exc!r}")
            self._merge(res, url_dict, lfn_dict, successful, failed)
        return S_OK({"Failed": failed, "Successful": successful})

    @staticmethod
    def _merge(
        res: DReturnType,
        url_dict: dict[str, str],
        lfn_dict: dict[str, Any],
        successful: dict[str, Any],
        failed: dict[str, Any],
    ) -> None:
        def add(name: str, reason: Any) -> None:
            previous = failed.get(name, "")
            failed[name] = f"{previous} {reason}" if previous else reason

        if not res["OK"]:
            for name in url_dict.values():
                add(name, res["Message"])
            return
        value = res["Value"]
        for url, name in url_dict.items():
            if url in value["Successful"]:
                successful[name] = value["Successful"][url]
                failed.pop(name, None)
                lfn_dict.pop(name, None)
            elif url in value["Failed"]:
                add(name, value["Failed"][url])
            else:
                add(name, "No error returned from plug-in")


__all__ = ["StorageElement"]
