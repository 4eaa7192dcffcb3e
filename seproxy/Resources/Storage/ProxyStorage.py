"""DIRAC's ``Proxy`` storage plugin, reimplemented for DIRAC 8.0 and 9.x by seproxy.

Loaded by DIRAC's ``StorageFactory`` (``ObjectLoader`` finds it in the ``seproxy``
extension before DIRAC's own module) when a ``StorageElement`` has ``UseProxy``.
Every call goes to a ``DataManagement/StorageElementProxy`` service (PROTOCOL.md 10):

* ``putFile``: ``sendFile putFile/<basename>`` then ``uploadFile(SE, lfn)``;
* ``getFile``: ``prepareFile(SE, lfn)`` then ``receiveFile getFile/<basename>``;
* everything else: ``callProxyMethod(SE, method, [{lfn: value}], kwargs)``;
* ``getDirectory``/``putDirectory``: ``listDirectory`` + ``getFile`` / ``putFile``
  file by file.

The service URLs are DIRAC's (``/Systems/DataManagement[/<instance>]/URLs`` and
``FailoverURLs``, 9.x and 8.0 layouts); a URL that cannot be reached is skipped for
a minute and the next one tried. A put or a get stays on one URL for its two steps
(the staged file lives on that server). The calls go through seproxy's own
``RPCClient`` and ``TransferClient``, given what DIRAC would use (its proxy location,
CA directory, host certificate settings, encoding): the transfer client offers the
windowed stream extension, which a seproxy service accepts and a DIRAC service ignores
(the transfer then runs DIRAC's own stop-and-wait stream). Every call has its own
connection, as with DIRAC's clients (no pooled connections: DIRAC code may fork, and a
child must not share a parent's TLS connection). If seproxy's clients cannot be set up
(no usable TLS backend...), DIRAC's ``RPCClient``/``TransferClient`` are used.

Results are DIRAC's bulk ``S_OK({"Successful": {...}, "Failed": {...}})`` keyed by
LFN; no exception leaves a public method (it becomes an ``S_ERROR``).
"""

from __future__ import annotations

import functools
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from DIRAC import S_ERROR, S_OK, gConfig, gLogger
from DIRAC.Core.DISET.RPCClient import RPCClient
from DIRAC.Core.DISET.TransferClient import TransferClient
from DIRAC.Core.Security import Locations
from DIRAC.Resources.Storage.StorageBase import StorageBase
from DIRAC.Resources.Storage.Utilities import checkArgumentFormat

SERVICE = "DataManagement/StorageElementProxy"
#: seconds a URL that refused connections is tried only after the others
UNREACHABLE_FOR = 60.0
sLog = gLogger.getSubLogger("ProxyStorage")

_unreachable: dict[str, float] = {}
_unreachable_lock = threading.Lock()

Result = dict[str, Any]


# ----------------------------------------------------------------------------- service URLs


def _system_sections() -> list[str]:
    """``/Systems/DataManagement`` in both layouts: with the 8.0 instance first, if any."""
    sections = []
    setup = gConfig.getValue("/DIRAC/Setup", "")
    instance = gConfig.getValue(f"/DIRAC/Setups/{setup}/DataManagement", "") if setup else ""
    if instance:
        sections.append(f"/Systems/DataManagement/{instance}")
    sections.append("/Systems/DataManagement")
    return sections


def _split(urls: str) -> list[str]:
    return [u.strip() for u in urls.split(",") if u.strip()]


def _dirac_urls() -> tuple[list[str], list[str]]:
    """DIRAC's own resolution for the running version (main URLs shuffled, failover URLs)."""
    from DIRAC.ConfigurationSystem.Client import PathFinder

    try:
        main = _split(PathFinder.getServiceURL(SERVICE))
        failover = _split(PathFinder.getServiceFailoverURL(SERVICE))
    except Exception as exc:  # noqa: BLE001 - DIRAC raises for some incomplete layouts
        sLog.debug("DIRAC could not resolve the proxy URLs", repr(exc))
        return [], []
    return main, failover


def proxy_urls() -> list[str]:
    """The StorageElementProxy URLs to try, in order (recently unreachable ones last)."""
    main, failover = _dirac_urls()
    if not main:  # a configuration in the other version's layout
        for section in _system_sections():
            main = gConfig.getValue(f"{section}/URLs/StorageElementProxy", [])
            if main:
                failover = gConfig.getValue(f"{section}/FailoverURLs/StorageElementProxy", [])
                random.shuffle(main)
                break
    urls = list(dict.fromkeys(main + failover))
    now = time.monotonic()
    with _unreachable_lock:
        down = {u for u in urls if _unreachable.get(u, 0.0) > now}
    return [u for u in urls if u not in down] + [u for u in urls if u in down]


def _mark(url: str, reachable: bool) -> None:
    with _unreachable_lock:
        if reachable:
            _unreachable.pop(url, None)
        else:
            _unreachable[url] = time.monotonic() + UNREACHABLE_FOR


#: how DIRAC's transports word a failed connect (its clients add no marker of their own)
_SOCKET_ERRORS = ("Connection refused", "timed out", "No route to host", "Network is unreachable",
                  "Name or service not known", "Temporary failure in name resolution")


def _is_unreachable(result: Result) -> bool:
    """A failed connect (next URL) rather than the service's answer (final)."""
    if result.get("OK"):
        return False
    message = str(result.get("Message", ""))
    return message.startswith("Can't connect to") or (
        "[Errno" in message and any(text in message for text in _SOCKET_ERRORS))


# ----------------------------------------------------------------------------- clients


def _encoding() -> str:
    """What this DIRAC process sends: DIRAC_USE_JSON_ENCODE (9.x: JSON by default, 8.0: DEncode)."""
    import DIRAC

    default = "yes" if int(str(DIRAC.version).split(".")[0].lstrip("v") or 0) >= 9 else "no"
    json = os.environ.get("DIRAC_USE_JSON_ENCODE", default).lower() in ("yes", "true")
    return "json" if json else "dencode"


def _seproxy_config_text() -> tuple[str, str | None]:
    """DIRAC's security settings as seproxy configuration text, and the proxy to present."""
    use_host = gConfig.getValue("/DIRAC/Security/UseServerCertificate", False)
    lines = [f"VirtualOrganization = {gConfig.getValue('/DIRAC/VirtualOrganization', '')}"]
    skip_ca = gConfig.getValue("/DIRAC/Security/SkipCAChecks", False)
    security = [f"UseServerCertificate = {'yes' if use_host else 'no'}",
                f"SkipCAChecks = {'yes' if skip_ca else 'no'}"]
    ca_dir = Locations.getCAsLocation()
    if ca_dir:
        security.append(f"CALocation = {ca_dir}")
    proxy = None
    if use_host:
        found = Locations.getHostCertificateAndKeyLocation()
        if found:
            security += [f"CertFile = {found[0]}", f"KeyFile = {found[1]}"]
    else:
        proxy = Locations.getProxyLocation() or None
    try:
        import OpenSSL  # noqa: F401 - seproxy's default TLS backend
    except ImportError:
        security.append("TLSBackend = m2crypto")  # DIRAC always has M2Crypto
    body = "\n".join(lines) + "\nSecurity\n{\n" + "\n".join(security) + "\n}\n"
    return f"DIRAC\n{{\n{body}}}\n", proxy


def _seproxy_client(kind: str, url: str) -> Any:
    """seproxy's RPCClient or TransferClient for ``url`` with DIRAC's credentials, or None."""
    try:  # the only use of seproxy's own API
        from seproxy.config import Config
        from seproxy.rpc.client import RPCClient as SeproxyRPCClient
        from seproxy.transfer.client import TransferClient as SeproxyTransferClient
    except ImportError as exc:
        sLog.debug("seproxy's clients are not importable", repr(exc))
        return None
    text, proxy = _seproxy_config_text()
    try:
        kwargs: dict[str, Any] = {"config": Config.from_text(text), "encoding": _encoding()}
        if proxy:
            kwargs["proxyLocation"] = proxy
        if kind == "rpc":
            return SeproxyRPCClient(url, **kwargs)
        return SeproxyTransferClient(url, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any set-up problem: DIRAC's clients do the work
        sLog.debug("seproxy's clients cannot be set up", repr(exc))
        return None


def rpc_client(url: str) -> Any:
    """The client for the service's RPC methods at ``url``."""
    return _seproxy_client("rpc", url) or RPCClient(url)


def transfer_client(url: str) -> Any:
    """The client that moves file data to/from ``url``."""
    return _seproxy_client("transfer", url) or TransferClient(url)


# ----------------------------------------------------------------------------- the plugin


def _never_raises(method: Callable[..., Result]) -> Callable[..., Result]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Result:
        try:
            return method(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the user's process must get an S_ERROR
            sLog.exception(f"ProxyStorage.{method.__name__} failed")
            return S_ERROR(f"ProxyStorage.{method.__name__}: {exc!r}")

    return wrapper


def _by_name(method: str) -> Callable[..., Result]:
    """A plugin method the service runs by name; keyword arguments are passed on."""

    def call(self: ProxyStorage, path: Any, **kwargs: Any) -> Result:
        return self._proxy_call(method, path, **kwargs)

    call.__name__ = call.__qualname__ = method
    call.__doc__ = f"``{method}`` through the service's ``callProxyMethod``."
    return _never_raises(call)


def _unreadable(source: Any) -> str:
    """Why ``source`` cannot be uploaded ("" if it can): not a readable local file."""
    if not isinstance(source, str):
        return f"ProxyStorage.putFile: the source must be a local file name, not {source!r}"
    try:
        with open(source, "rb"):
            return ""
    except OSError as exc:
        return str(exc)


def _bulk(successful: dict, failed: dict) -> Result:
    return S_OK({"Failed": failed, "Successful": successful})


class ProxyStorage(StorageBase):
    """A storage plugin whose storage is a StorageElementProxy service."""

    _INPUT_PROTOCOLS = ["file", "dip", "dips"]
    _OUTPUT_PROTOCOLS = ["dip", "dips"]

    def __init__(self, storageName: str, parameters: dict[str, Any]) -> None:
        super().__init__(storageName, parameters)
        self.pluginName = "Proxy"  # StorageElement then hands this plugin LFNs, not URLs

    # -- plumbing ---------------------------------------------------------------------------------

    @property
    def seName(self) -> str:
        """The StorageElement's name (a derived SE's own name, not its base SE's)."""
        return getattr(self.se, "name", None) or self.name

    @staticmethod
    def _on_urls(work: Callable[[str], Result]) -> Result:
        """``work(url)`` on the first URL that can be reached."""
        urls = proxy_urls()
        if not urls:
            return S_ERROR(f"URL for service {SERVICE} not found")
        result: Result = S_ERROR(f"Cannot connect to {SERVICE}")
        for url in urls:
            result = work(url)
            _mark(url, not _is_unreachable(result))
            if not _is_unreachable(result):
                break
            sLog.warn("StorageElementProxy unreachable, trying the next URL", url)
        result.pop("rpcStub", None)
        return result

    def _proxy_call(self, method: str, path: Any, **kwargs: Any) -> Result:
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        urls = res["Value"]
        return self._on_urls(
            lambda url: rpc_client(url).callProxyMethod(self.seName, method, [urls], kwargs))

    # -- data: put and get -----------------------------------------------------------------------

    @_never_raises
    def putFile(self, path: Any, sourceSize: int = 0) -> Result:
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        successful, failed = {}, {}
        for lfn, source in res["Value"].items():
            problem = _unreadable(source)
            if problem:  # DIRAC's File plugin words it the same (the OSError's text)
                failed[lfn] = problem
                continue
            size = os.path.getsize(source)
            if sourceSize and size != sourceSize:
                failed[lfn] = (f"Source and destination file sizes do not match "
                               f"({sourceSize} vs {size}).")
                continue
            one = self._on_urls(lambda url, lfn=lfn, source=source: self._put_one(url, lfn, source))
            if one["OK"]:
                successful[lfn] = one["Value"]
            else:
                sLog.error("ProxyStorage.putFile failed", f"{lfn}: {one['Message']}")
                failed[lfn] = one["Message"]
        return _bulk(successful, failed)

    def _put_one(self, url: str, lfn: str, source: str) -> Result:
        sent = transfer_client(url).sendFile(source, f"putFile/{os.path.basename(lfn)}")
        if not sent["OK"]:
            return sent
        uploaded = rpc_client(url).uploadFile(self.seName, lfn)
        if not uploaded["OK"]:
            return uploaded
        size = uploaded.get("Value")
        if isinstance(size, int) and not isinstance(size, bool):
            return S_OK(size)
        sized = rpc_client(url).callProxyMethod(self.seName, "getFileSize", [{lfn: False}], {})
        if not sized["OK"]:
            return sized
        if lfn not in sized["Value"]["Successful"]:
            return S_ERROR(sized["Value"]["Failed"].get(lfn, "No error returned from the proxy"))
        return S_OK(sized["Value"]["Successful"][lfn])

    @_never_raises
    def getFile(self, path: Any, localPath: Any = False) -> Result:
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        directory = localPath or os.getcwd()
        successful, failed = {}, {}
        for lfn in res["Value"]:
            destination = os.path.join(directory, os.path.basename(lfn))
            one = self._on_urls(lambda url, lfn=lfn, to=destination: self._get_one(url, lfn, to))
            if one["OK"]:
                successful[lfn] = one["Value"]
            else:
                sLog.error("ProxyStorage.getFile failed", f"{lfn}: {one['Message']}")
                failed[lfn] = one["Message"]
        return _bulk(successful, failed)

    def _get_one(self, url: str, lfn: str, destination: str) -> Result:
        prepared = rpc_client(url).prepareFile(self.seName, lfn)
        if not prepared["OK"]:
            return prepared
        existed = os.path.exists(destination)
        received = transfer_client(url).receiveFile(destination, f"getFile/{os.path.basename(lfn)}")
        if not received["OK"]:
            if not existed and os.path.isfile(destination):
                os.unlink(destination)  # nothing half-written left behind
            return received
        if not os.path.isfile(destination):
            return S_ERROR(f"ProxyStorage.getFile: {destination} was not written")
        return S_OK(os.path.getsize(destination))

    # -- directories, file by file ---------------------------------------------------------------

    @_never_raises
    def getDirectory(self, path: Any, localPath: Any = False) -> Result:
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        successful, failed = {}, {}
        for directory in res["Value"]:
            target = os.path.join(localPath or os.getcwd(), os.path.basename(directory.rstrip("/")))
            counts = {"Files": 0, "Size": 0}
            ok = self._download_tree(directory, target, counts)
            (successful if ok else failed)[directory] = counts
        return _bulk(successful, failed)

    def _download_tree(self, directory: str, target: str, counts: dict[str, int]) -> bool:
        listing = self._proxy_call("listDirectory", directory)
        if not listing["OK"] or directory not in listing["Value"]["Successful"]:
            return False
        content = listing["Value"]["Successful"][directory]
        os.makedirs(target, exist_ok=True)
        ok = True
        if content.get("Files"):
            got = self.getFile(list(content["Files"]), localPath=target)
            if not got["OK"]:
                return False
            counts["Files"] += len(got["Value"]["Successful"])
            counts["Size"] += sum(got["Value"]["Successful"].values())
            ok = not got["Value"]["Failed"]
        for sub in content.get("SubDirs", {}):
            local = os.path.join(target, os.path.basename(sub.rstrip("/")))
            ok = self._download_tree(sub, local, counts) and ok
        return ok

    @_never_raises
    def putDirectory(self, path: Any) -> Result:
        res = checkArgumentFormat(path)
        if not res["OK"]:
            return res
        successful, failed = {}, {}
        for directory, source in res["Value"].items():
            counts = {"Files": 0, "Size": 0}
            if not isinstance(source, str) or not os.path.isdir(source):
                failed[directory] = counts
                continue
            files = {}
            for root, _, names in os.walk(source):
                relative = os.path.relpath(root, source)
                for name in names:
                    parts = (directory.rstrip("/"), relative, name)
                    lfn = "/".join(p for p in parts if p not in ("", "."))
                    files[lfn] = os.path.join(root, name)
            put = self.putFile(files) if files else _bulk({}, {})
            if not put["OK"]:
                failed[directory] = counts
                continue
            counts["Files"] = len(put["Value"]["Successful"])
            counts["Size"] = sum(put["Value"]["Successful"].values())
            (failed if put["Value"]["Failed"] else successful)[directory] = counts
        return _bulk(successful, failed)

    # -- everything the service runs by name (its callProxyMethod whitelist) ------------------

    exists = _by_name("exists")
    isFile = _by_name("isFile")
    getFileSize = _by_name("getFileSize")
    getFileMetadata = _by_name("getFileMetadata")
    removeFile = _by_name("removeFile")
    prestageFile = _by_name("prestageFile")  # StorageElement passes lifetime=
    prestageFileStatus = _by_name("prestageFileStatus")
    releaseFile = _by_name("releaseFile")
    pinFile = _by_name("pinFile")
    isDirectory = _by_name("isDirectory")
    getDirectoryMetadata = _by_name("getDirectoryMetadata")
    getDirectorySize = _by_name("getDirectorySize")
    listDirectory = _by_name("listDirectory")
    createDirectory = _by_name("createDirectory")
    removeDirectory = _by_name("removeDirectory")  # StorageElement passes recursive=

    @_never_raises
    def getOccupancy(self, **kwargs: Any) -> Result:
        return self._on_urls(
            lambda url: rpc_client(url).callProxyMethod(self.seName, "getOccupancy", [], kwargs))
