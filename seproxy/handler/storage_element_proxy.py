"""``DataManagement/StorageElementProxy``: the service handler (PROTOCOL.md 10).

DIRAC clients see DIRAC 8.0's service: the same methods, ``types_``, answer shapes
and error texts (``callProxyMethod``, ``uploadFile``, ``prepareFile``,
``prepareFileForHTTP``, the transfers ``getFile/<name>`` and ``putFile/<name>``).
Fixed underneath (PROTOCOL 10.9):

* staged files live in a per-caller namespace (DN + group), reached only through
  validated fileIDs and ``O_NOFOLLOW`` opens (:mod:`seproxy.staging.namespace`);
* uploads land in ``tmp/`` and are renamed only once complete and checksum-verified;
  their adler32 is computed as the bytes arrive and kept with the file (XRootD's
  ``user.XrdCks.adler32`` attribute), so ``uploadFile`` hands it to the storage plugin
  and the catalogue without reading the file again, and a File SE on the same
  filesystem takes the file by rename (no copy);
  free space comes from ``statvfs`` (no 1 GiB cap: ``MaxFileSize``), a disk filling
  up mid-write is a clean error; cache watermarks evict LRU files not in use;
* ``callProxyMethod`` reaches only a whitelist of storage methods;
* storage calls run in the service's threads (no fork) with DIRAC's 200/300 s limits,
  with per-call credentials (:mod:`seproxy.handler.credentials`), never ``os.environ``;
* HTTP keys carry a 256-bit nonce from :mod:`secrets` under an HMAC with the instances'
  shared secret, are issued only when something was staged, are single-use through
  shared state and expire in the background (:mod:`seproxy.staging.keyregister`): any
  instance serves a key another issued; HTTP can be served over TLS.

State lives in one :class:`~seproxy.handler.state.ProxyState` per service, built by the module-level
``initializeStorageElementProxyHandler(serviceInfo)`` (DIRAC API).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import os
import secrets
import threading
from typing import Any, ClassVar

from seproxy.checksum import adler32
from seproxy.config import get_config
from seproxy.errors import AuthError, CacheFullError, ConfigError, PathError, SeproxyError, StateError, TransferError
from seproxy.handler import catalog
from seproxy.handler.instance import InstanceRunning
from seproxy.handler.state import HttpServerFactory, ProxyState
from seproxy.localfs import LocalSource, get_checksum_xattr, set_checksum_xattr
from seproxy.returnvalues import S_ERROR, S_OK, returnSingleResult, unwrap
from seproxy.rpc.connection import Connection
from seproxy.rpc.server.handler import RequestHandler
from seproxy.staging.cache import gRegister, purgeCacheDirectory
from seproxy.staging.namespace import Namespace, local_name, namespace_id, open_regular, parse_file_id
from seproxy.transfer.filehelper import FileHelper

log = logging.getLogger("seproxy.handler.StorageElementProxy")

__all__ = ["StorageElementProxyHandler", "initializeStorageElementProxyHandler",
           "purgeCacheDirectory", "gRegister", "ProxyState"]

#: Storage methods a client may run by name through callProxyMethod (what DIRAC's
#: Proxy plugin forwards, plus harmless queries). getFile/putFile and friends read
#: or write *local* paths and are only used by the service itself.
PROXY_METHODS = frozenset({
    "exists", "isFile", "getFileSize", "getFileMetadata", "removeFile", "prestageFile",
    "prestageFileStatus", "releaseFile", "pinFile", "isDirectory", "getDirectoryMetadata",
    "getDirectorySize", "listDirectory", "createDirectory", "removeDirectory", "getURL",
    "getOccupancy", "getChecksumType", "getStatus", "isValid",
})
CONNECTION_DETAILS_ERROR = "__getConnectionDetails: Failed to get client connection details."

_initialising = threading.local()


_default_state: dict[str, ProxyState] = {}


def initializeStorageElementProxyHandler(serviceInfo: dict) -> dict:  # noqa: N803 - DIRAC API
    """Read ``BasePath``, ``HttpAccess``, ``HttpPort``, ``HttpCache`` ...; start HTTP."""
    cls = getattr(_initialising, "cls", None)
    cfg = cls._rh_context.cfg if cls is not None and cls._rh_context is not None else get_config()
    section = serviceInfo["serviceSectionPath"]
    try:
        state = ProxyState(cfg, section, getattr(cls, "http_server", None))
        try:
            if state.http_flag:
                state.start_http()
            state.finish_startup(serviceInfo.get("URL", ""))
        except BaseException:
            state.stop()
            raise
    except InstanceRunning as exc:
        return S_ERROR(str(exc))
    except (ConfigError, StateError) as exc:
        log.error("%s", exc)
        return S_ERROR(str(exc))
    except OSError as exc:
        log.error("StorageElementProxy start-up failed: %s", exc)
        return S_ERROR(f"StorageElementProxy start-up failed: {exc}")
    old = _default_state.pop(section, None) if cls is None else None
    if old is not None:
        old.stop()
    if cls is not None:
        cls.state = state
        _initialising.cls = None
    else:
        _default_state[section] = state
    return S_OK()


class StorageElementProxyHandler(RequestHandler):
    """DIRAC's StorageElementProxy handler (PROTOCOL 10.3, 10.4).

    ``http_server`` starts the HTTP front when ``HttpAccess`` is on; the handler does
    not know the HTTP package (a layer above both sets it: ``seproxy.cli.wiring``).
    """

    state: ProxyState | None = None
    http_server: ClassVar[HttpServerFactory | None] = None

    @classmethod
    def initializeHandler(cls, serviceInfo: dict) -> dict:  # noqa: N803 - DIRAC API
        # runs just before the module initialiser: tell it which service class it sets up
        _initialising.cls = cls
        return S_OK()

    #: methods that reach storage, hence need the caller's delegated proxy
    #: when CredentialSource = delegation
    DELEGATION_METHODS = frozenset({"callProxyMethod", "uploadFile", "prepareFile",
                                    "prepareFileForHTTP"})
    _delegated: bytes | None = None

    def _rh_delegation(self, transport: Connection, credentials: dict, action_type: str,
                       action_name: str) -> dict | None:
        """Called by the service between authorisation and the proposal's acceptance:
        ask for a delegated proxy (PROTOCOL 4.4) when this request will need one and the
        credential source keeps none of this caller (``CredentialSource.delegated_proxy``).
        Returns None to go on, or the S_ERROR that ends the connection."""
        state = self._state()
        if state.credentials.kind != "delegation" or action_type != "RPC" \
                or action_name not in self.DELEGATION_METHODS:
            return None
        from seproxy.security import delegation

        chain = transport.peer_chain()

        def delegate() -> bytes:
            request, key = delegation.make_request()
            transport.send_data(S_OK({delegation.DELEGATE_KEY: request}))
            answer = transport.receive_data()
            return delegation.accept(answer, key, list(chain.certificates) if chain else [])

        try:
            self._delegated = state.credentials.delegated_proxy(credentials, chain, delegate)
        except SeproxyError as exc:
            log.info("delegation from %s refused: %s", credentials.get("DN"), exc)
            return S_ERROR(f"Error in receiving delegated proxy: {exc}")
        return None

    # -- helpers ---------------------------------------------------------------------------
    def _state(self) -> ProxyState:
        state = type(self).state
        if state is None:
            section = self.serviceInfoDict.get("serviceSectionPath", "")
            state = _default_state.get(section)
        if state is None:
            raise ConfigError("StorageElementProxy is not initialised")
        return state

    def _caller(self) -> tuple[dict[str, Any], str]:
        """The caller's credential dict and VO; AuthError when they are unusable."""
        cred = self.getRemoteCredentials()
        if not cred.get("DN") or not cred.get("group") or not cred.get("username"):
            raise AuthError(CONNECTION_DETAILS_ERROR)
        return cred, self._state().registry.vo_for_group(cred["group"])

    def _staging(self, pfn: str) -> tuple[dict[str, Any], str, str, Namespace] | dict:
        """``(credentials, VO, staging name of pfn, namespace)`` or the S_ERROR to answer."""
        try:
            cred, vo = self._caller()
            return cred, vo, local_name(pfn), self._namespace()
        except AuthError:
            return S_ERROR(CONNECTION_DETAILS_ERROR)
        except PathError as exc:
            return S_ERROR(str(exc))

    def _namespace(self) -> Namespace:
        cred = self.getRemoteCredentials()
        return Namespace(self._state().cache.ns_root, cred.get("DN", ""), cred.get("group", ""))

    # -- RPC: callProxyMethod ----------------------------------------------------------------
    types_callProxyMethod = [(str,), (str,), list, dict]

    def export_callProxyMethod(self, se: str, name: str, args: list, kargs: dict) -> dict:
        """Run the whitelisted StorageElement method ``name`` as the caller."""
        bad = _utf8_error("argument", se, name, args, kargs)
        if bad is not None:
            return bad
        state = self._state()
        return state.run_limited(state.call_timeout, "__proxyWrapper", self._proxy_wrapper,
                                 se, name, args, kargs)

    def _proxy_wrapper(self, se: str, name: str, args: list, kargs: dict) -> dict:
        from seproxy.storage.element import StorageElement

        try:
            cred, vo = self._caller()
        except AuthError:
            return S_ERROR(CONNECTION_DETAILS_ERROR)
        if not vo:
            return S_ERROR("Can not determine VO of the operation requester")
        if name not in PROXY_METHODS:
            known = not name.startswith("_") and callable(getattr(StorageElement, name, None))
            if known or name in StorageElement.TRANSFER_METHODS:
                return S_ERROR(f"Method '{name}' is not allowed through the StorageElementProxy")
            return S_ERROR(f"Method '{name}' isn't implemented!")
        if not all(isinstance(k, str) and k.isidentifier() and not k.startswith("_") for k in kargs):
            return S_ERROR("Keyword argument names must be public identifiers")
        state = self._state()
        with state.credentials.for_caller(cred, vo, self._delegated) as creds:
            storage = state.storage_element(se, vo, creds)
            method = getattr(storage, name, None)
            if method is None:
                return S_ERROR(f"Method '{name}' isn't implemented!")
            if not callable(method):
                return S_ERROR(f"Attribute '{name}' isn't a method!")
            result = method(*args, **kargs)
        if name == "removeFile" and unwrap(result).ok:
            for lfn in result["Value"].get("Successful", {}):
                with contextlib.suppress(Exception):
                    state.catalogue.remove_replica(lfn, se)
        return result

    # -- RPC: uploadFile -------------------------------------------------------------------------
    types_uploadFile = [(str,), (str,)]

    def export_uploadFile(self, se: str, pfn: str) -> dict:
        """Put the caller's staged ``putFile/<basename(pfn)>`` to ``pfn`` on ``se``."""
        bad = _utf8_error("LFN", se, pfn)
        if bad is not None:
            return bad
        state = self._state()
        return state.run_limited(state.transfer_timeout, "__uploadFile", self._upload_file, se, pfn)

    def _upload_file(self, se: str, pfn: str) -> dict:
        staging = self._staging(pfn)
        if isinstance(staging, dict):
            return staging
        cred, vo, name, namespace = staging
        state = self._state()
        local = namespace.path("putFile", name)
        if not local.is_file() or local.is_symlink():
            return S_ERROR(f"File {name} does not exist")
        try:
            with state.cache.in_use(local), state.credentials.for_caller(cred, vo, self._delegated) as creds:
                st = local.stat()
                # computed while the bytes arrived (transfer_fromClient); read only if the
                # cache's filesystem could not keep it
                checksum = get_checksum_xattr(str(local), st) or catalog.adler32_file(local)
                # consumable: the file is removed below, so a File SE may rename it in
                source = LocalSource(str(local), checksum, consumable=True)
                storage = state.storage_element(se, vo, creds)
                result = returnSingleResult(storage.putFile({pfn: source}))
                if result["OK"]:
                    try:
                        state.catalogue.add_file(pfn, st.st_size, checksum, se)
                    except StateError as exc:  # stored all the same: the SE fallback finds it
                        log.warning("uploadFile: %s stored, not registered: %s", pfn, exc)
        except AuthError as exc:
            result = S_ERROR(str(exc))
        finally:
            _discard(local, state.cache.tmp)
        if not result["OK"]:
            log.error("uploadFile: failed to put %s to %s: %s", name, se, result["Message"])
        return result

    # -- RPC: prepareFile ------------------------------------------------------------------------
    types_prepareFile = [(str,), (str,)]

    def export_prepareFile(self, se: str, pfn: str) -> dict:
        """Download ``pfn`` from ``se`` into the caller's ``getFile/`` area."""
        bad = _utf8_error("LFN", se, pfn)
        if bad is not None:
            return bad
        state = self._state()
        return state.run_limited(state.transfer_timeout, "__prepareFile", self._prepare_file, se, pfn)

    def _prepare_file(self, se: str, pfn: str) -> dict:
        staging = self._staging(pfn)
        if isinstance(staging, dict):
            return staging
        cred, vo, name, namespace = staging
        state = self._state()
        try:
            state.cache.make_room(0)
        except CacheFullError as exc:
            return S_ERROR(f"Not enough disk space: {exc}")
        final_dir = namespace.directory("getFile")
        work = state.cache.tmp / f"get-{secrets.token_hex(8)}"
        work.mkdir(mode=0o700)
        try:
            with state.credentials.for_caller(cred, vo, self._delegated) as creds:
                storage = state.storage_element(se, vo, creds)
                result = returnSingleResult(storage.getFile(pfn, localPath=str(work)))
            if not result["OK"]:
                log.error("prepareFile: failed to get %s from %s: %s", pfn, se, result["Message"])
                return result
            staged = work / name
            if not staged.is_file() or staged.is_symlink():
                return S_ERROR(f"File {name} was not downloaded")
            os.replace(staged, final_dir / name)
        except AuthError as exc:
            return S_ERROR(str(exc))
        except OSError as exc:
            return S_ERROR(f"prepareFile: {exc.strerror or exc}")
        finally:
            purgeCacheDirectory(work)
        return S_OK()

    # -- RPC: prepareFileForHTTP -----------------------------------------------------------------
    types_prepareFileForHTTP = [[str, list]]

    def export_prepareFileForHTTP(self, lfn: str | list) -> dict:
        """Stage LFN(s) for an HTTP download; a key is issued if anything was staged."""
        state = self._state()
        if state.purge_interval <= 0:  # no background purger: purge here, as DIRAC did
            with contextlib.suppress(SeproxyError, OSError):
                state.register.purgeExpired()
        lfns = [lfn] if isinstance(lfn, str) else lfn
        if not all(isinstance(item, str) for item in lfns):
            return S_ERROR("prepareFileForHTTP: LFNs must be strings")
        bad = _utf8_error("LFN", lfns)
        if bad is not None:
            return bad
        try:
            staging = state.register.staging_dir()
        except OSError as exc:
            return S_ERROR(f"prepareFileForHTTP: {exc.strerror or exc}")
        try:
            result = state.run_limited(state.transfer_timeout, "__prepareFileForHTTP",
                                       self._prepare_file_for_http, lfns, staging)
        except BaseException:
            purgeCacheDirectory(staging)
            raise
        if not result["OK"] or not result["Value"]["Successful"]:
            purgeCacheDirectory(staging)
            if result["OK"]:
                result["CachePath"] = str(staging)
            return result
        cred = self.getRemoteCredentials()
        try:
            key, directory = state.register.issue(staging, namespace_id(cred.get("DN", ""),
                                                                        cred.get("group", "")))
        except (OSError, SeproxyError) as exc:
            purgeCacheDirectory(staging)
            return S_ERROR(f"prepareFileForHTTP: cannot issue a download key: {exc}")
        result["CachePath"] = str(directory)
        if state.http_flag and state.http_url_base:
            result["HttpKey"] = key
            result["HttpURL"] = f"{state.http_url_base}/{key}"
        return result

    def _prepare_file_for_http(self, lfns: list[str], directory: Any) -> dict:
        try:
            cred, vo = self._caller()
        except AuthError:
            return S_ERROR(CONNECTION_DETAILS_ERROR)
        state = self._state()
        with state.credentials.for_caller(cred, vo, self._delegated) as creds:
            ses: dict[str, Any] = {}

            def open_se(name: str) -> Any:
                if name not in ses:
                    ses[name] = state.storage_element(name, vo, creds)
                return ses[name]

            chain = catalog.CatalogueChain([
                state.catalogue, catalog.StorageElementFallback(state.fallback_ses, open_se)])
            value = catalog.fetch_lfns(lfns, directory, catalogue=chain, open_se=open_se,
                                       tmp_dir=state.cache.tmp)
        return S_OK(value)

    # -- transfers ---------------------------------------------------------------------------
    def transfer_toClient(self, fileID: Any, token: Any, fileHelper: FileHelper) -> dict:  # noqa: N803
        """Send the caller's staged ``getFile/<name>`` and remove it once sent."""
        try:
            area, name = parse_file_id(fileID)
            if area != "getFile":
                raise PathError(f"Invalid fileID {fileID!r}: files are fetched from getFile/")
            namespace = self._namespace()
            dir_fd = namespace.dir_fd(area, create=True)
        except PathError as exc:
            return _refuse_download(fileHelper, str(exc))
        state = self._state()
        try:
            try:
                fd = open_regular(dir_fd, name)
            except FileNotFoundError:
                return _refuse_download(fileHelper, f"File {name} does not exist")
            except (OSError, PathError):
                return _refuse_download(fileHelper, "Failed to get file descriptor")
            path = namespace.path(area, name)
            with state.cache.in_use(path):
                try:
                    result = fileHelper.FDToNetwork(fd)
                finally:
                    os.close(fd)
                if not result["OK"]:
                    return S_ERROR(f"Failed to get file {fileID}")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dir_fd)
            return result
        finally:
            os.close(dir_fd)

    def transfer_fromClient(self, fileID: Any, token: Any, fileSize: Any, fileHelper: FileHelper) -> dict:  # noqa: N803
        """Receive ``putFile/<name>`` into a temporary file; rename it when complete."""
        state = self._state()
        try:
            area, name = parse_file_id(fileID)
            if area != "putFile":
                raise PathError(f"Invalid fileID {fileID!r}: files are uploaded to putFile/")
            namespace = self._namespace()
        except PathError as exc:
            return S_ERROR(str(exc))
        if isinstance(fileSize, bool) or not isinstance(fileSize, int) or fileSize < -1:
            return S_ERROR(f"Invalid file size {fileSize!r}: an integer >= 0 is needed "
                           "(-1 when unknown)")
        size = fileSize
        if state.max_file_size and size > state.max_file_size:
            return S_ERROR(f"File too large: {size} bytes, MaxFileSize is {state.max_file_size}")
        reservation = state.reserve_space(max(size, 0))
        if reservation is None:
            return S_ERROR("Not enough disk space")
        with reservation:
            try:
                state.cache.make_room(max(size, 0))
            except CacheFullError:
                return S_ERROR("Not enough disk space")
            return self._receive_upload(fileID, token, fileHelper, area, name, namespace, size)

    def _receive_upload(self, fileID: Any, token: Any, fileHelper: Any, area: str,  # noqa: N803
                        name: str, namespace: Namespace, size: int) -> dict:
        state = self._state()
        if isinstance(token, str) and "NoCheckSum" in token:
            fileHelper.disableCheckSum()
        try:
            dir_fd = namespace.dir_fd(area, create=True)
        except PathError as exc:
            return S_ERROR(str(exc))
        tmp_name = f"{namespace.id[:8]}-{secrets.token_hex(8)}.part"
        tmp_fd = os.open(state.cache.tmp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                             dir_fd=tmp_fd)
            except OSError:
                return S_ERROR("Failed to get file descriptor")
            with state.cache.in_use(state.cache.tmp / tmp_name):
                result = self._receive(fileHelper, fd, state, size)
                if result["OK"]:
                    set_checksum_xattr(str(state.cache.tmp / tmp_name), result.pop("adler32"))
                    os.replace(tmp_name, name, src_dir_fd=tmp_fd, dst_dir_fd=dir_fd)
                    return result
            log.warning("upload of %s failed: %s", fileID, result["Message"])
            return S_ERROR(f"Failed to put file {fileID}: {result['Message']}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name, dir_fd=tmp_fd)
            os.close(tmp_fd)
            os.close(dir_fd)

    @staticmethod
    def _receive(fileHelper: FileHelper, fd: int, state: ProxyState, size: int) -> dict:  # noqa: N803
        """Stream into ``fd`` (closed here), flushed to disk on success; never more than the
        announced ``size`` bytes, and with an unknown size (<= 0) never below MinFreeSpace.
        The answer carries the adler32 of the bytes written (key ``adler32``, for the
        caller only)."""
        with _GuardedSink(fd, state, size) as sink:
            result = fileHelper.networkToDataSink(sink, maxFileSize=state.max_file_size)
            if result["OK"]:
                try:
                    os.fsync(sink.fileno())
                except OSError as exc:
                    return S_ERROR(f"Error while writing received data: {exc}")
                result["adler32"] = sink.adler32_hex()
        return result


class _Adler32File(io.FileIO):
    """An unbuffered file on ``fd`` that keeps the adler32 of everything written."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "wb", closefd=True)
        self._adler = 1

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        total = 0
        while total < len(view):  # a raw write may be short: write the rest
            written = super().write(view[total:])
            if not written:
                raise OSError(errno.EIO, f"write made no progress after {total} bytes")
            total += written
        self._adler = adler32(view, self._adler)
        return total

    def adler32_hex(self) -> str:
        return f"{self._adler & 0xFFFFFFFF:08x}"


def _discard(path: Any, tmp_dir: Any) -> None:
    """Remove a staged file now; free its blocks off the answer's path (freeing a large
    file's blocks takes tens of ms on ext4). It is renamed into ``tmp/`` first, so the
    name is free at once and a later upload of the same name is never the one removed
    (``tmp/`` is also emptied at start-up)."""
    gone = os.path.join(tmp_dir, f"gone-{secrets.token_hex(8)}.part")
    try:
        os.replace(path, gone)
    except FileNotFoundError:
        return  # moved into a File SE, or never there
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    threading.Thread(target=_unlink_quietly, args=(gone,), name="discard", daemon=True).start()


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class _GuardedSink(_Adler32File):
    """An upload's file: refuses bytes beyond the announced size and, when the size is
    unknown, bytes that would eat into ``MinFreeSpace`` (checked at every write). DIRAC
    clients announce -1 when they cannot stat the source and 0 for a pipe or socket
    (``stat`` of a stream): both count as unknown."""

    def __init__(self, fd: int, state: ProxyState, announced: int) -> None:
        super().__init__(fd)
        self._state = state
        self._announced = announced
        self._written = 0

    def write(self, data: Any) -> int:  # type: ignore[override]
        count = len(data) if not isinstance(data, memoryview) else data.nbytes
        if 0 < self._announced < self._written + count:
            raise TransferError(f"Received more data than the announced {self._announced} bytes")
        if self._announced <= 0 and not self._state.space_for(count):
            raise TransferError("Not enough disk space")
        written = super().write(data)
        self._written += written or 0
        return written  # type: ignore[return-value]


def _not_utf8(value: Any, depth: int = 0) -> str | None:
    """The first string in ``value`` (nested lists, tuples, dict keys and values) that is
    not valid Unicode (a DEncode byte string or a JSON lone surrogate), else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if depth > 50:
        return None
    if isinstance(value, dict):
        items: Any = (x for pair in value.items() for x in pair)
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return None
    for item in items:
        bad = _not_utf8(item, depth + 1)
        if bad is not None:
            return bad
    return None


def _utf8_error(what: str, *values: Any) -> dict | None:
    """S_ERROR naming the first non-UTF-8 string among ``values`` (escaped), or None."""
    for value in values:
        bad = _not_utf8(value)
        if bad is not None:
            shown = bad.encode("utf-8", "surrogateescape" if _escapable(bad) else "backslashreplace")
            return S_ERROR(f"Invalid {what} {shown!r}: not valid UTF-8")
    return None


def _escapable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_download(fileHelper: FileHelper, message: str) -> dict:  # noqa: N803
    """End a download that cannot start: DIRAC sends an empty EOF, then the error as the
    final answer; a seproxy client (stream extension) gets the error in the stream."""
    if getattr(getattr(fileHelper, "options", None), "extended", False):
        fileHelper.sendError(message)
    else:
        fileHelper.sendEOF()
    return S_ERROR(message)

