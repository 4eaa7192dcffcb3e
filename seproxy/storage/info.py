"""The information side of ``StorageElement``: status, access checks, parameters.

``StorageElementInfo`` is a mixin of ``StorageElement`` (element.py) holding DIRAC's
non-bulk methods: ``status``/``getStatus``, ``isValid`` (VO and access-flag checks per
method group), ``getProtocolSections`` and friends, ``getStorageParameters``,
``getChecksumType``, ``getLFNFromURL``, ``isSameSE``, ``dump``. It reads the
attributes ``StorageElement.__init__`` sets (``options``, ``storages``, ``valid``...).
"""

from __future__ import annotations

import errno
import logging
import re
from typing import Any

from seproxy.config import schema
from seproxy.returnvalues import S_ERROR, S_OK, DReturnType
from seproxy.storage.utils import checkArgumentFormat, pfnparse

log = logging.getLogger("seproxy.storage.element")

ENOMETH = 1002  # DIRAC's DErrno.ENOMETH


def enometh(message: str) -> DReturnType:
    return {
        "OK": False,
        "Errno": ENOMETH,
        "Message": f"No such method or function ( {ENOMETH} : {message})",
        "CallStack": [],
    }


class StorageElementInfo:
    """DIRAC's information methods of a storage element (mixin of ``StorageElement``)."""

    name: str
    vo: str
    valid: bool
    errorReason: str
    options: dict[str, Any]
    storages: dict[str, Any]
    localProtocolSections: list[str]
    remoteProtocolSections: list[str]
    _cfg: Any

    stageMethods = ("prestageFile", "prestageFileStatus")
    readMethods = ("getFile", "getDirectory")
    writeMethods = (
        "retransferOnlineFile",
        "putFile",
        "replicateFile",
        "pinFile",
        "releaseFile",
        "createDirectory",
        "putDirectory",
    )
    removeMethods = ("removeFile", "removeDirectory")
    checkMethods = (
        "exists",
        "getDirectoryMetadata",
        "getDirectorySize",
        "getFileSize",
        "getFileMetadata",
        "listDirectory",
        "isDirectory",
        "isFile",
        "getOccupancy",
        "getWLCGTokenPath",
    )
    okMethods = (
        "getLocalProtocols",
        "getProtocols",
        "getProtocolSections",
        "getRemoteProtocols",
        "storageElementName",
        "getStorageParameters",
        "getTransportURL",
        "isLocalSE",
    )

    def storageElementName(self) -> str:
        return self.name

    def getStorageElementName(self) -> DReturnType:
        return S_OK(self.storageElementName())

    def checksumType(self) -> str:
        if "ChecksumType" in self.options:
            return str(self.options["ChecksumType"]).upper()
        return str(schema.value(self._cfg, "/Resources/StorageElements/ChecksumType")).upper()

    def getChecksumType(self) -> DReturnType:
        return S_OK(self.checksumType())

    def status(self) -> dict[str, Any]:
        if not self.valid:
            return {
                "Read": False,
                "Write": False,
                "Remove": False,
                "Check": False,
                "DiskSE": False,
                "TapeSE": False,
                "TotalCapacityTB": -1,
                "DiskCacheTB": -1,
            }

        def allowed(option: str) -> bool:
            return not (
                option in self.options and self.options[option] not in ("Active", "Degraded")
            )

        result: dict[str, Any] = {
            "Read": allowed("ReadAccess"),
            "Write": allowed("WriteAccess"),
            "Remove": allowed("RemoveAccess"),
        }
        result["Check"] = True if result["Read"] else allowed("CheckAccess")
        se_type = self.options.get("SEType")
        result["DiskSE"] = re.search("D[1-9]", se_type) is not None if se_type else True
        result["TapeSE"] = re.search("T[1-9]", se_type) is not None if se_type else False
        for key in ("TotalCapacityTB", "DiskCacheTB"):
            try:
                result[key] = float(self.options[key])
            except (KeyError, TypeError, ValueError):
                result[key] = -1
        return result

    def getStatus(self) -> DReturnType:
        valid = self.isValid()
        return valid if not valid["OK"] else S_OK(self.status())

    def isValid(self, operation: str | None = None) -> DReturnType:
        if not self.valid:
            return S_ERROR(
                f"SE.isValid: Failed to create StorageElement plugins: {self.errorReason}"
            )
        if "VO" in self.options and self.vo not in self.options["VO"]:
            return S_ERROR(
                errno.EACCES, "StorageElement.isValid: StorageElement is not allowed for VO"
            )
        if not operation or operation in self.okMethods:
            return S_OK()
        status = self.status()
        op = operation.lower()
        if (
            operation in self.readMethods
            or operation in self.stageMethods
            or op in ("read", "readaccess")
        ):
            kind = "Read"
        elif operation in self.writeMethods or op in ("write", "writeaccess"):
            kind = "Write"
        elif operation in self.removeMethods or op in ("remove", "removeaccess"):
            kind = "Remove"
        elif operation in self.checkMethods or op in ("check", "checkaccess"):
            kind = "Check"
        else:
            return enometh("SE.isValid: The supplied operation is not known.")
        permitted = status[kind] or (kind == "Check" and status["Read"])
        if not permitted:
            return S_ERROR(errno.EACCES, f"SE.isValid: {kind} access not currently permitted.")
        return S_OK()

    def getProtocolSections(self) -> DReturnType:
        return (
            S_OK(self.localProtocolSections + self.remoteProtocolSections)
            if self.valid
            else S_ERROR(self.errorReason)
        )

    def getLocalProtocolSections(self) -> DReturnType:
        return S_OK(self.localProtocolSections) if self.valid else S_ERROR(self.errorReason)

    def getRemoteProtocolSections(self) -> DReturnType:
        return S_OK(self.remoteProtocolSections) if self.valid else S_ERROR(self.errorReason)

    def getStorageParameters(
        self,
        protocolSection: str | None = None,
        protocol: str | None = None,
    ) -> DReturnType:
        if protocolSection and protocol:
            return S_ERROR(errno.EINVAL, "plugin and protocol cannot be set together.")
        if not (protocolSection or protocol):
            return S_ERROR(errno.EINVAL, "plugin and protocol cannot be None together.")
        if protocolSection:
            storage = self.storages.get(protocolSection)
            if storage:
                return S_OK(storage.getParameters())
        else:
            for storage in self.storages.values():
                params = storage.getParameters()
                if params["Protocol"] == protocol:
                    return S_OK(params)
        return S_ERROR(errno.ENOPROTOOPT, "Requested protocolSection or protocol not available.")

    def isSameSE(self, otherSE: StorageElementInfo) -> bool:
        if self is otherSE:
            return True

        def endpoints(se: StorageElementInfo) -> set[tuple[str, str]]:
            return {
                (p.getParameters()["Host"], p.getParameters()["Path"]) for p in se.storages.values()
            }

        return bool(endpoints(self) & endpoints(otherSE))

    def dump(self) -> None:
        if not self.valid:
            log.debug("StorageElement %s is not valid: %s", self.name, self.errorReason)
            return
        lines = [f"{k.ljust(15)}: {self.options[k]}" for k in sorted(self.options)]
        for i, storage in enumerate(self.storages.values(), 1):
            params = storage.getParameters()
            lines.append(f"============Protocol {i} ============")
            lines += [f"{k.ljust(15)}: {params[k]}" for k in sorted(params)]
        log.debug("StorageElement %s\n%s", self.name, "\n".join(lines))

    def getLFNFromURL(self, urls: Any) -> DReturnType:
        res = checkArgumentFormat(urls)
        if not res["OK"]:
            return S_ERROR(
                errno.EINVAL, "Supplied urls must be string, list of strings or a dictionary."
            )
        result: dict[str, dict[str, Any]] = {"Successful": {}, "Failed": {}}
        for url in res["Value"]:
            lfn = self._url_path(url)
            if lfn:
                result["Successful"][url] = lfn
            else:
                result["Failed"][url] = "Failed to get the url path for any of the protocols!!"
        return S_OK(result)

    def _url_path(self, url: str) -> str:
        parsed = pfnparse(url)
        if not parsed["OK"]:
            return ""
        full = f"{parsed['Value']['Path']}/{parsed['Value']['FileName']}"
        for storage in self.storages.values():
            if storage.isNativeURL(url)["Value"]:
                base = storage.getParameters()["Path"]
                if not base:
                    return full
                if full.startswith(base):
                    return full[len(base) :]
        return ""
