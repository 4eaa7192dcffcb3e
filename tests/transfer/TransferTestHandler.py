"""A test handler with every transfer direction (extends tests/interop/InteropHandler.py).

Stores under the service option ``StoragePath`` (relative ids only: no ``..``, not
absolute); ``MaxFileSize`` limits uploads. Uploads go to a hidden temporary name
and are renamed only when the stream was complete and verified, so a broken
upload never leaves a file under its final name.

Special file ids (the behaviours the transfer battery needs):

==================  ==========================================================
``early-error*``    fromClient: returns ``Not enough disk space`` before reading
``early-ok*``       fromClient: returns S_OK without reading (Incomplete transfer)
``abort-after-1*``  fromClient: reads one chunk, then ``markAsTransferred``
``abort*``          toClient: ``markAsTransferred`` at once
``strict*``         fromClient: checks the MD5 even with a ``NoCheckSum`` token (as the
                    StorageElementProxy does), so such an upload fails the CRC check
``raise*``          any direction: raises ``RuntimeError("boom")``
missing file        toClient: EOF then ``File <id> does not exist`` (DIRAC SE)
==================  ==========================================================
"""

import os
import secrets

try:  # inside a DIRAC venv (tests/interop on PYTHONPATH, as for DIRAC's HandlerPath)
    from DIRAC import S_ERROR, S_OK
    from InteropHandler import InteropHandler
except ImportError:  # seproxy
    from seproxy.returnvalues import S_ERROR, S_OK
    from tests.interop.InteropHandler import InteropHandler


class TransferTestHandler(InteropHandler):
    """InteropHandler's options (StoragePath, MaxFileSize) and RPCs, every transfer direction."""

    def _stored_path(self, file_id):
        """Relative ids with sub-directories (InteropHandler's transfer_toClient uses it)."""
        return self._path(file_id)

    def _path(self, file_id):
        file_id = str(file_id)
        parts = file_id.split("/")
        if not file_id or file_id.startswith("/") or "\0" in file_id or ".." in parts:
            raise ValueError(f"bad fileId {file_id!r}")
        return os.path.join(self.storage_path, *parts)

    def transfer_fromClient(self, fileId, token, fileSize, fileHelper):
        if str(fileId).startswith("raise"):
            raise RuntimeError("boom")
        if str(fileId).startswith("early-error"):
            return S_ERROR("Not enough disk space")
        if str(fileId).startswith("early-ok"):
            return S_OK()
        if str(fileId).startswith("abort-after-1"):
            result = fileHelper.receiveData()
            fileHelper.markAsTransferred()
            return S_OK(len(result.get("Value") or b""))
        try:
            final = self._path(fileId)
        except ValueError as exc:
            return S_ERROR(str(exc))
        if "NoCheckSum" in token and not str(fileId).startswith("strict"):
            fileHelper.disableCheckSum()
        os.makedirs(os.path.dirname(final), exist_ok=True)
        partial = os.path.join(os.path.dirname(final),
                               f".{os.path.basename(final)}.part-{secrets.token_hex(6)}")
        try:
            with open(partial, "wb") as sink:
                result = fileHelper.networkToDataSink(sink, maxFileSize=self.max_file_size)
            if result["OK"]:
                os.replace(partial, final)
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
        return result

    def transfer_toClient(self, fileId, token, fileHelper):
        if str(fileId).startswith("raise"):
            raise RuntimeError("boom")
        if str(fileId).startswith("abort"):
            fileHelper.markAsTransferred()
            return S_OK("aborted")
        return super().transfer_toClient(fileId, token, fileHelper)

    @staticmethod
    def _bulk_dir(bulk_id):
        name = str(bulk_id)
        for suffix in (".bz2", ".tar"):
            name = name.removesuffix(suffix)
        return name

    def transfer_bulkFromClient(self, bulkId, token, bulkSize, fileHelper):
        try:
            dest = self._path(self._bulk_dir(bulkId))
        except ValueError as exc:
            return S_ERROR(str(exc))
        os.makedirs(dest, exist_ok=True)
        return fileHelper.networkToBulk(dest, str(bulkId).endswith(".bz2"), self.max_file_size)

    def transfer_bulkToClient(self, bulkId, token, fileHelper):
        try:
            source = self._path(self._bulk_dir(bulkId))
        except ValueError as exc:
            fileHelper.sendEOF()
            return S_ERROR(str(exc))
        if not os.path.isdir(source):
            fileHelper.sendEOF()
            return S_ERROR(f"Bulk {bulkId} does not exist")
        entries = [os.path.join(source, name) for name in sorted(os.listdir(source))]
        return fileHelper.bulkToNetwork(entries, str(bulkId).endswith(".bz2"))
