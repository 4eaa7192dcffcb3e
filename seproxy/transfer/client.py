"""``TransferClient``: DIRAC's file transfer client (PROTOCOL.md 6.1, 6.4, 6.5).

Same constructor keywords as ``RPCClient`` and the same methods, arguments and
accepted file kinds as DIRAC's (``sendFile``, ``receiveFile``, ``sendBulk``,
``receiveBulk``, ``listBulk``), each returning the server's final answer or an
S_ERROR. seproxy additions, all keyword-only: ``progress=callable(bytes_done)`` per
call, and ``stream_extension=False`` on the constructor to never offer the
seproxy stream extension (transfer.extension) - it is offered by default and only
used when the server answers for it, so DIRAC servers see DIRAC's stream.

The CLI draws its progress bars from ``progress`` (seproxy.cli.progress).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from seproxy.errors import SeproxyError
from seproxy.localfs import atomic_write
from seproxy.returnvalues import S_ERROR, S_OK, SErrorException, unwrap
from seproxy.rpc.client.base import BaseClient
from seproxy.rpc.connection import Connection
from seproxy.transfer import bulk, extension
from seproxy.transfer.filehelper import DIRAC_OPTIONS, FileHelper, StreamOptions

Progress = Callable[[int], None]

_CLIENT_KWARGS = ("stream_extension", "window", "chunk_size")


class TransferClient(BaseClient):
    """Send and receive files and bulks (tar) to/from a DISET service."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        own = {key: kwargs.pop(key) for key in _CLIENT_KWARGS if key in kwargs}
        super().__init__(url, **kwargs)
        self._offer = (extension.make_offer(own.get("window", extension.DEFAULT_WINDOW),
                                            own.get("chunk_size", extension.DEFAULT_CHUNK))
                       if own.get("stream_extension", True) else None)

    # ------------------------------------------------------------------ plumbing

    @property
    def _encoding(self) -> str | None:
        return getattr(self, "encoding", None)

    def _sendTransferHeader(self, actionName: str, fileInfo: tuple) -> dict[str, Any]:
        """Propose, send the header, read the answer: ``S_OK((transport, options))``."""
        transport = None
        try:
            result, transport = self._connect_and_propose("FileTransfer", actionName)
            if not result["OK"]:
                _close(transport)
                return result
            header = list(fileInfo) + ([self._offer] if self._offer is not None else [])
            transport.send_data(S_OK(header), self._encoding)
            answer = transport.receive_data()
            reply = unwrap(answer)
            if not reply.ok:
                _close(transport)
                return answer if reply.valid else S_ERROR("Invalid transfer answer")
            options = extension.options_from_answer(answer.get(extension.ANSWER_KEY)) \
                if self._offer is not None else DIRAC_OPTIONS
            return S_OK((transport, options))
        except Exception as exc:  # noqa: BLE001 - DIRAC's message for any failure here
            _close(transport)
            return S_ERROR(f"Cound not request transfer: {exc}")

    def _run(self, action: str, file_info: tuple, work: Callable[[FileHelper], dict[str, Any]],
             *, checksum: bool = True, progress: Progress | None = None) -> dict[str, Any]:
        result = self._sendTransferHeader(action, file_info)
        if not result["OK"]:
            return result
        transport, options = result["Value"]
        try:
            helper = FileHelper(transport, self._encoding, checksum, options=options,
                                progress=progress)
            result = work(helper)
            if not result["OK"]:
                return result
            return transport.receive_data()
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        finally:
            _close(transport)

    # ------------------------------------------------------------------ files

    def sendFile(self, filename: Any, fileId: Any, token: str = "", *,
                 progress: Progress | None = None) -> dict[str, Any]:
        helper = FileHelper(checkSum="NoCheckSum" not in token)
        result = helper.getFileDescriptor(filename, "r")
        if not result["OK"]:
            return result
        fd = result["Value"]
        try:
            return self._run("FromClient", (fileId, token, file_size(filename)),
                             lambda h: h.FDToNetwork(fd),
                             checksum="NoCheckSum" not in token, progress=progress)
        finally:
            if isinstance(filename, str):      # only what we opened ourselves
                helper.oFile.close()

    def receiveFile(self, filename: Any, fileId: Any, token: str = "", *,
                    progress: Progress | None = None) -> dict[str, Any]:
        if isinstance(filename, str):
            return self._receive_to_path(filename, fileId, token, progress)
        result = FileHelper().getDataSink(filename)
        if not result["OK"]:
            return result
        sink, close_after = result["Value"], result["closeAfterUse"]
        try:
            return self._receive_into(sink, fileId, token, progress)
        finally:
            if close_after:
                sink.close()

    def _receive_into(self, sink: Any, fileId: Any, token: str,
                      progress: Progress | None) -> dict[str, Any]:
        return self._run("ToClient", (fileId, token), lambda h: h.networkToDataSink(sink),
                         checksum="NoCheckSum" not in token, progress=progress)

    def _receive_to_path(self, path: str, fileId: Any, token: str,
                         progress: Progress | None) -> dict[str, Any]:
        """Receive into a temporary file renamed to ``path`` only on success.

        DIRAC writes straight to ``path`` and leaves a partial (or empty) file behind
        when the transfer fails; here a failed download leaves nothing.
        """
        try:
            with atomic_write(path) as sink:
                result = self._receive_into(sink, fileId, token, progress)
                if not result["OK"]:
                    raise SErrorException(result)  # discards the partial file
        except SErrorException as failed:
            return failed.result
        except OSError:
            return S_ERROR(f"{path} can't be opened")
        return result

    # ------------------------------------------------------------------ bulks

    def sendBulk(self, fileList: list[str], bulkId: Any, token: str = "",
                 compress: bool = True, bulkSize: int = -1, onthefly: bool = True, *,
                 progress: Progress | None = None) -> dict[str, Any]:
        missing = bulk.missing_entries(fileList)
        if missing:
            return S_ERROR("Some files or directories don't exist :\n\t%s" % "\n\t".join(missing))
        return self._run("BulkFromClient", (bulk.bulk_name(bulkId, compress), token, bulkSize),
                         lambda h: h.bulkToNetwork(fileList, compress, onthefly),
                         progress=progress)

    def receiveBulk(self, destDir: str, bulkId: Any, token: str = "",
                    compress: bool = True, *, progress: Progress | None = None) -> dict[str, Any]:
        if not os.path.isdir(destDir):
            return S_ERROR(f"{destDir} is not a directory for bulk receival")
        return self._run("BulkToClient", (bulk.bulk_name(bulkId, compress), token),
                         lambda h: h.networkToBulk(destDir, compress), progress=progress)

    def listBulk(self, bulkId: Any, token: str = "", compress: bool = True) -> dict[str, Any]:
        result = self._sendTransferHeader("ListBulk", (bulk.bulk_name(bulkId, compress), token))
        if not result["OK"]:
            return result
        transport, _options = result["Value"]
        try:
            return transport.receive_data(1048576)
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        finally:
            _close(transport)


def file_size(target: Any) -> int:
    """Size announced in the header: from ``stat``, ``-1`` when unknown (DIRAC)."""
    try:
        if isinstance(target, (str, os.PathLike)):
            return os.stat(target).st_size
        if isinstance(target, int) and not isinstance(target, bool):
            return os.fstat(target).st_size
        return os.fstat(target.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return -1


def _close(transport: Connection | None) -> None:
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.close()


__all__ = ["StreamOptions", "TransferClient", "file_size"]
