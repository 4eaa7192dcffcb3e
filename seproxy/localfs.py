"""Local-file helpers shared by every storage plugin: atomic writes, streamed
copies with adler32, and XRootD's checksum extended attribute, and ``LocalSource``: a local file handed
to ``putFile`` together with what its producer already knows about it.

Atomic write: data goes to a hidden temporary name in the *same directory*
(``.<name>.seproxy-<random>.part``), is fsync'ed, then renamed over the final
name; on any error the temporary file is removed. A reader therefore sees the
old file, the complete new file, or nothing -- never a partial file. The writer
holds an exclusive ``flock`` on its temporary file, so a temporary whose lock can be
taken has no live writer: :func:`remove_orphans` removes those (left by a process
killed mid-write) without touching uploads in progress, in this or another process.

``user.XrdCks.adler32`` holds XRootD's ``XrdCksData`` record (96 bytes, all
integers big-endian):

======  =====  ==============================================
offset  size   field
======  =====  ==============================================
0       16     algorithm name ``b"adler32"``, NUL padded
16      8      fmTime: file mtime (int64, seconds)
24      4      csTime: checksum time minus fmTime (int32)
28      2      reserved (0)
30      1      reserved (0)
31      1      checksum length in bytes (4)
32      64     checksum value (4 bytes), NUL padded
======  =====  ==============================================
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import struct
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, Self

from seproxy.checksum import adler32
from seproxy.errors import SizeMismatch

#: Default copy block: large enough for throughput, small enough for bounded memory.
BLOCK_SIZE = 4 * 1024 * 1024
XATTR_NAME = "user.XrdCks.adler32"
_CKS_STRUCT = struct.Struct(">16sqihBB64s")
TEMP_SUFFIX = ".part"
TEMP_MARK = ".seproxy-"


def adler32_hex(value: int) -> str:
    """DIRAC's checksum text: 8 lower-case hex digits."""
    return f"{value & 0xFFFFFFFF:08x}"


def dirac_adler_text(checksum: str) -> str:
    """An adler32 as DIRAC's File plugin writes it in metadata: DIRAC turns ``0x`` into
    ``0000`` and keeps the last 8 characters, so values below ``0x1000`` come out short
    (the empty file's ``00000001`` is ``000001``)."""
    return ("00000" + format(int(checksum, 16), "x"))[-8:]


def copy_stream(
    src: BinaryIO,
    dst: BinaryIO | Callable[[bytes], object],
    block_size: int = BLOCK_SIZE,
) -> tuple[int, str]:
    """Copy ``src`` to ``dst`` (a file or a write callable) in blocks.

    Returns ``(bytes copied, adler32 hex)``; memory stays at one block.
    """
    write = dst if callable(dst) else dst.write
    adler = 1
    total = 0
    buf = bytearray(block_size)
    view = memoryview(buf)
    readinto = getattr(src, "readinto", None)
    while True:
        if readinto is not None:
            n = readinto(view)
            if not n:
                break
            chunk = view[:n]
        else:
            data = src.read(block_size)
            if not data:
                break
            chunk = memoryview(data)
            n = len(data)
        adler = adler32(chunk, adler)
        while chunk:  # raw writes may be short (e.g. a filling disk): write the rest
            written = write(chunk)
            if written is None:
                break
            if written <= 0:
                raise OSError(errno.EIO, f"write made no progress after {total} bytes")
            chunk = chunk[written:]
        total += n
    return total, adler32_hex(adler)


def kernel_copy(src: BinaryIO, dst: BinaryIO) -> int:
    """Copy the rest of ``src`` to ``dst`` inside the kernel (``sendfile``); bytes copied."""
    total = 0
    offset = src.tell()
    while True:
        sent = os.sendfile(dst.fileno(), src.fileno(), offset + total, 1 << 30)
        if not sent:
            return total
        total += sent


def file_adler32(path: str | os.PathLike[str], block_size: int = BLOCK_SIZE) -> str:
    """adler32 of a file's content, streamed."""
    adler = 1
    with open(path, "rb") as fh:
        while chunk := fh.read(block_size):
            adler = adler32(chunk, adler)
    return adler32_hex(adler)


def temp_name_for(final_path: str) -> str:
    """A fresh hidden temporary name beside ``final_path``."""
    head, tail = os.path.split(final_path)
    return os.path.join(head, f".{tail}{TEMP_MARK}{secrets.token_hex(6)}{TEMP_SUFFIX}")


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_MARK in name and name.endswith(TEMP_SUFFIX)


def _fsync_directory(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_write(final_path: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``final_path`` atomically on success.

    The temporary file is created exclusively (``O_EXCL``, never following a
    symlink) and removed if the body raises. On success it is flushed, fsync'ed
    and renamed, and the directory entry is fsync'ed.
    """
    tmp = temp_name_for(final_path)

    def opener(path: str, _flags: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        # created with mode 0 ("being set up"); the real mode comes after the lock
        return os.open(path, flags, 0)

    fh = open(tmp, "wb", buffering=0, opener=opener)  # closed below
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # "a writer is alive" (see remove_orphans)
        os.fchmod(fh.fileno(), mode)
        with fh:
            yield fh  # type: ignore[misc]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(os.path.dirname(final_path))


#: A temporary still in mode 0 (its writer was between creating it and taking the lock)
#: is left alone until it is this old.
ORPHAN_GRACE = 60.0


def remove_orphans(root: str, *, grace: float = ORPHAN_GRACE) -> tuple[int, int]:
    """Remove the upload temporaries under ``root`` whose writer is gone.

    A temporary counts as orphaned when its ``flock`` can be taken (no process holds
    it open for writing) and its writer had got past the lock (its mode is no longer
    0), or - mode still 0 - it is older than ``grace`` seconds. Symlinks are never
    followed. Returns ``(files removed, bytes freed)``.
    """
    removed = freed = 0
    now = time.time()
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if not is_temp_name(name):
                continue
            path = os.path.join(dirpath, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                continue  # gone, or a symlink
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    continue
                if stat.S_IMODE(st.st_mode) == 0 and now - st.st_mtime < grace:
                    continue  # its writer may not have taken the lock yet
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer holds it
                current = os.lstat(path)
                if (current.st_dev, current.st_ino) == (st.st_dev, st.st_ino):
                    os.unlink(path)
                    removed += 1
                    freed += st.st_size
            except OSError:
                continue
            finally:
                os.close(fd)
    return removed, freed


def atomic_copy(
    src_path: str,
    final_path: str,
    *,
    block_size: int = BLOCK_SIZE,
    keep_metadata: bool = True,
    store_checksum: bool = True,
    expected_size: int = 0,
    known_checksum: str = "",
) -> tuple[int, str]:
    """Copy a local file atomically to ``final_path``; returns (size, adler32).

    ``keep_metadata`` copies permission bits and times (like ``shutil.copy2``);
    ``store_checksum`` writes the XRootD checksum attribute where supported.
    ``expected_size`` (if non-zero) is checked *before* the rename: a mismatch
    raises ``SizeMismatch`` and nothing appears under the final name.
    ``known_checksum``: the source's adler32, already computed by whoever wrote it
    (``LocalSource``): the bytes then move in the kernel (``sendfile``) without
    passing through Python, and that value is the one stored.
    """
    with open(src_path, "rb") as src:
        if stat.S_ISDIR(os.fstat(src.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), src_path)
        with atomic_write(final_path) as dst:
            if known_checksum:
                size, checksum = kernel_copy(src, dst), known_checksum.lower().zfill(8)
            else:
                size, checksum = copy_stream(src, dst, block_size)
            on_disk = os.fstat(dst.fileno()).st_size
            if on_disk != size:
                raise OSError(
                    errno.EIO, f"short copy: {on_disk} of {size} bytes written", final_path
                )
            if expected_size and expected_size != size:
                raise SizeMismatch(expected_size, size)
            tmp = str(dst.name)
            if keep_metadata:
                shutil.copystat(src_path, tmp)
            if store_checksum:
                set_checksum_xattr(tmp, checksum)
    return size, checksum




def set_checksum_xattr(path: str, checksum: str) -> bool:
    """Store ``checksum`` as ``user.XrdCks.adler32``; False if the filesystem refuses."""
    try:
        st = os.stat(path)
        fm_time = int(st.st_mtime)
        record = _CKS_STRUCT.pack(
            b"adler32", fm_time, int(time.time()) - fm_time, 0, 0, 4, bytes.fromhex(checksum)
        )
        os.setxattr(path, XATTR_NAME, record)
        return True
    except (OSError, ValueError):
        return False


def get_checksum_xattr(path: str, st: os.stat_result | None = None) -> str | None:
    """The stored adler32 if present and still valid for the file's mtime, else None."""
    try:
        record = os.getxattr(path, XATTR_NAME)
        if st is None:
            st = os.stat(path)
    except OSError:
        return None
    if len(record) != _CKS_STRUCT.size:
        return None
    name, fm_time, _cs, _r1, _r2, length, value = _CKS_STRUCT.unpack(record)
    if name.rstrip(b"\0") != b"adler32" or length != 4 or fm_time != int(st.st_mtime):
        return None
    return value[:4].hex()


def checksum_of(path: str, st: os.stat_result | None = None) -> str:
    """adler32 of a local file: the attribute if valid, else computed by reading."""
    return get_checksum_xattr(path, st) or file_adler32(path)


class LocalSource(str):
    """A local file path for ``putFile`` with what is already known about the file.

    ``checksum``: its adler32 (hex), computed while its bytes arrived, so a plugin
    need not read the file for it. ``consumable``: the caller deletes the file once
    ``putFile`` returns, so a plugin on the same filesystem may move it into place
    instead of copying. It *is* the path (a ``str``), so every plugin -- a site's
    own included -- that expects a path keeps working and simply ignores the rest.
    """

    checksum: str
    consumable: bool

    def __new__(cls, path: str | os.PathLike[str], checksum: str = "",
                consumable: bool = False) -> Self:
        self = super().__new__(cls, os.fspath(path))
        self.checksum = checksum
        self.consumable = consumable
        return self

    @property
    def path(self) -> str:
        return str.__str__(self)


def known_checksum(source: object) -> str:
    """The adler32 a ``putFile`` source carries (``LocalSource.checksum``), else ``""``."""
    return source.checksum if isinstance(source, LocalSource) else ""


def atomic_move(
    source: LocalSource, final_path: str, *, checksum: str = "", expected_size: int = 0
) -> int | None:
    """Rename a consumable regular file to ``final_path``; its size, or ``None`` when the
    two paths are on different filesystems (the caller copies then).

    The rename is atomic (``final_path`` is the old file or the complete new one), keeps
    the file's mode and times like :func:`atomic_copy`, and stores ``checksum`` as the
    XRootD attribute first. A size differing from ``expected_size`` raises
    ``SizeMismatch`` and leaves both paths untouched.
    """
    st = os.lstat(source.path)
    if not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), source.path)
    if os.stat(os.path.dirname(final_path) or ".").st_dev != st.st_dev:
        return None
    if expected_size and expected_size != st.st_size:
        raise SizeMismatch(expected_size, st.st_size)
    if checksum:
        set_checksum_xattr(source.path, checksum)
    try:
        os.rename(source.path, final_path)
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            return None
        raise
    _fsync_directory(os.path.dirname(final_path))
    return st.st_size


__all__ = [
    "BLOCK_SIZE",
    "XATTR_NAME",
    "LocalSource",
    "SizeMismatch",
    "adler32_hex",
    "atomic_copy",
    "atomic_move",
    "atomic_write",
    "checksum_of",
    "copy_stream",
    "dirac_adler_text",
    "file_adler32",
    "get_checksum_xattr",
    "is_temp_name",
    "kernel_copy",
    "known_checksum",
    "remove_orphans",
    "set_checksum_xattr",
    "temp_name_for",
]
