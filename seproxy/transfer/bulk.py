"""Bulk transfers: tar archives streamed through a bounded pipe (PROTOCOL.md 6.4).

Sending: a thread writes ``tarfile`` in streaming mode (``w|bz2`` or ``w|``) into an
``os.pipe`` (the kernel bounds it to 64 KiB) while the stream sends what it reads
from the other end, chunk by chunk. If the archive cannot be produced the peer gets
an S_ERROR, never an EOF for a truncated archive.

Receiving: the stream writes into a pipe, a thread extracts from it **always with
tarfile's ``data`` filter** (PEP 706) into a staging directory inside the
destination: members with ``..``, absolute names, links out of the destination and
device files are refused with a clear error. Only a complete, verified archive is
moved into place, so no partial file ever appears under its final name.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from seproxy.errors import TransferError


class StreamEnds(Protocol):
    """The two raising stream cores of a file helper the tar functions drive
    (``seproxy.transfer.filehelper.FileHelper`` is one)."""

    def send_stream(self, readinto: Callable[[memoryview], int]) -> int: ...

    def receive_stream(self, write: Callable[[Any], Any], max_size: int = 0) -> int: ...

STAGING_PREFIX = ".seproxy-bulk-"


def bulk_name(bulk_id: Any, compress: bool) -> str:
    """The id on the wire: ``<bulkId>.tar.bz2`` or ``<bulkId>.tar`` (DIRAC)."""
    return f"{bulk_id}.tar.bz2" if compress else f"{bulk_id}.tar"


def missing_entries(file_list: Iterable[str]) -> list[str]:
    return [entry for entry in file_list if not os.path.exists(entry)]


def write_tar(file_list: Iterable[str], fileobj: Any, compress: bool) -> None:
    """Write the archive of ``file_list`` (each under its base name, recursively)."""
    with tarfile.open(name="Pipe", mode="w|bz2" if compress else "w|", fileobj=fileobj) as tar:
        for entry in file_list:
            tar.add(os.path.realpath(entry), os.path.basename(os.path.normpath(entry)),
                    recursive=True)


class _Producer(threading.Thread):
    """Writes the archive into the write end of a pipe; keeps the error if it fails."""

    def __init__(self, file_list: list[str], write_fd: int, compress: bool) -> None:
        super().__init__(name="seproxy-bulk-tar", daemon=True)
        self.file_list, self.write_fd, self.compress = file_list, write_fd, compress
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with os.fdopen(self.write_fd, "wb") as pipe:
                write_tar(self.file_list, pipe, self.compress)
        except BaseException as exc:  # noqa: BLE001 - reported to the sender
            self.error = exc


def send_tar(helper: StreamEnds, file_list: list[str], compress: bool, onthefly: bool) -> int:
    """Stream the archive of ``file_list`` through ``helper``; returns bytes sent."""
    if not onthefly:
        with tempfile.TemporaryFile(prefix="seproxy-bulk-") as tmp:
            write_tar(file_list, tmp, compress)
            tmp.seek(0)
            return helper.send_stream(tmp.readinto)
    read_fd, write_fd = os.pipe()
    producer = _Producer(list(file_list), write_fd, compress)
    producer.start()

    def readinto(view: memoryview) -> int:
        count = os.readv(read_fd, [view])
        if count == 0:
            producer.join()
            if producer.error is not None:
                raise TransferError(f"Error while creating bulk: {producer.error}")
        return count

    try:
        return helper.send_stream(readinto)
    finally:
        os.close(read_fd)          # a producer still writing gets EPIPE and stops
        producer.join()


class _Extractor(threading.Thread):
    """Extracts a tar stream from the read end of a pipe with the ``data`` filter."""

    def __init__(self, read_fd: int, staging: Path, compress: bool) -> None:
        super().__init__(name="seproxy-bulk-untar", daemon=True)
        self.read_fd, self.staging, self.compress = read_fd, staging, compress
        self.error: str | None = None

    def run(self) -> None:
        pipe = os.fdopen(self.read_fd, "rb")
        try:
            with tarfile.open(mode="r|bz2" if self.compress else "r|*", fileobj=pipe) as tar:
                for member in tar:
                    check_member_name(member)
                    tar.extract(member, self.staging, filter="data")
            while pipe.read(65536):      # padding after the end-of-archive blocks
                pass
        except tarfile.FilterError as exc:
            self.error = refusal_message(exc)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            self.error = f"Error while extracting bulk: {exc}"
        finally:
            pipe.close()


_REFUSALS = (
    (tarfile.AbsolutePathError, "absolute path"),
    (tarfile.OutsideDestinationError, "path outside the destination"),
    (tarfile.AbsoluteLinkError, "absolute link"),
    (tarfile.LinkOutsideDestinationError, "link pointing outside the destination"),
    (tarfile.SpecialFileError, "device or other special file"),
)


def check_member_name(member: tarfile.TarInfo) -> None:
    """Refuse absolute names and ``..`` components outright (the data filter would only
    strip a leading ``/``)."""
    name = member.name.replace("\\", "/")
    if name.startswith("/") or os.path.isabs(member.name):
        raise tarfile.AbsolutePathError(member)
    if ".." in name.split("/"):
        raise tarfile.OutsideDestinationError(member, name)


def refusal_message(exc: tarfile.FilterError) -> str:
    """A clear error naming the member, without the server's paths."""
    reason = next((text for kind, text in _REFUSALS if isinstance(exc, kind)), "unsafe member")
    return f"Error while extracting bulk: refused member {exc.tarinfo.name!r} ({reason})"


def receive_tar(helper: StreamEnds, dest_dir: str, compress: bool, max_size: int = 0) -> int:
    """Receive an archive from ``helper`` and extract it safely into ``dest_dir``."""
    dest = Path(dest_dir)
    if not dest.is_dir():
        raise TransferError(f"{dest_dir} is not a directory for bulk receival")
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest))
    read_fd, write_fd = os.pipe()
    extractor = _Extractor(read_fd, staging, compress)
    extractor.start()
    sink = os.fdopen(write_fd, "wb", buffering=0)

    def write(data: Any) -> None:
        try:
            view = memoryview(data)
            while view:
                view = view[sink.write(view):]
        except BrokenPipeError:
            extractor.join()
            raise TransferError(extractor.error or "Error while extracting bulk") from None

    try:
        try:
            received = helper.receive_stream(write, max_size)
        finally:
            sink.close()
            extractor.join()
        if extractor.error:
            raise TransferError(extractor.error)
        merge_tree(staging, dest)
        return received
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def merge_tree(source: Path, dest: Path) -> None:
    """Move every entry of ``source`` into ``dest`` (directories merged, files replaced)."""
    for entry in source.iterdir():
        target = dest / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            merge_tree(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)


def list_tar(fd: int, compress: bool) -> list[str]:
    """Names of the members of the archive readable from ``fd`` (DIRAC's bulkListToNetwork)."""
    with os.fdopen(fd, "rb") as pipe:
        try:
            with tarfile.open(mode="r|bz2" if compress else "r|", fileobj=pipe) as tar:
                return [member.name for member in tar]
        except tarfile.ReadError as exc:
            raise TransferError(f"Error reading bulk: {exc}") from exc
        except tarfile.CompressionError as exc:
            raise TransferError(f"Error in bulk compression setting: {exc}") from exc
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise TransferError(f"Error in listing bulk: {exc}") from exc
