"""Per-caller staging namespaces and fileID validation for the StorageElementProxy.

DIRAC's proxy joined the client's ``fileID`` to ``BasePath`` as a plain string and
shared one flat ``getFile/`` and ``putFile/`` directory between all users. Here:

* the only fileIDs accepted are ``getFile/<name>`` and ``putFile/<name>`` (what
  DIRAC's ``Proxy`` storage plugin sends), where ``<name>`` is one path component:
  not empty, not ``.``/``..``, no ``/`` or ``\\``, no NUL or other control
  character, and the same holds after percent-decoding (``%2e%2e``, ``%2f``);
* each caller (DN + group) has its own directory ``ns/<sha256(DN, group)>``, so
  users never see or collide with each other's staged files;
* files are opened relative to directory descriptors with ``O_NOFOLLOW`` at every
  level, so a symlink planted anywhere in the cache cannot lead outside it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from seproxy.errors import PathError
from seproxy.storage.utils import component_problem

#: The two staging areas a DIRAC client names in a fileID.
AREAS = ("getFile", "putFile")
MAX_NAME_BYTES = 255


def check_name(name: object, what: str = "file name") -> str:
    """Return ``name`` if it is one safe path component, else raise :class:`PathError`."""
    if not isinstance(name, str):
        raise PathError(f"Invalid {what}: expected a string, got {type(name).__name__}")
    problem = component_problem(name) if name else "relative"
    if problem == "relative":
        raise PathError(f"Invalid {what} {name!r}: empty or a relative directory reference")
    if problem == "separator":
        raise PathError(f"Invalid {what} {name!r}: path separators are not allowed")
    if problem == "control":
        raise PathError(f"Invalid {what} {name!r}: control characters (e.g. NUL) are not allowed")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise PathError(f"Invalid {what}: longer than {MAX_NAME_BYTES} bytes")
    return name


def parse_file_id(file_id: object) -> tuple[str, str]:
    """Split a wire fileID into ``(area, name)``; :class:`PathError` if it is not allowed."""
    if not isinstance(file_id, str):
        raise PathError(f"Invalid fileID: expected a string, got {type(file_id).__name__}")
    if "\x00" in file_id:
        raise PathError(f"Invalid fileID {file_id!r}: control characters (e.g. NUL) are not allowed")
    area, sep, name = file_id.partition("/")
    if not sep or area not in AREAS:
        raise PathError(f"Invalid fileID {file_id!r}: must be getFile/<name> or putFile/<name>")
    return area, check_name(name, "fileID name")


def namespace_id(dn: str, group: str) -> str:
    """The directory name of one caller's namespace (stable, opaque, filesystem-safe)."""
    digest = hashlib.sha256(f"{dn}\x00{group}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:40]


def local_name(lfn_or_pfn: str) -> str:
    """The staging name of an LFN: its base name, validated (what DIRAC's plugin uses)."""
    return check_name(os.path.basename(str(lfn_or_pfn)), "LFN base name")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def open_dir(root: str | os.PathLike[str], parts: tuple[str, ...], *, create: bool = False) -> int:
    """An fd of ``root/parts...`` reached without following any symlink below ``root``.

    With ``create`` missing directories are made (mode 0700). The caller closes the fd.
    """
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            check_name(part, "directory name")
            if create:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise PathError(f"Cache directory {part!r} is not a plain directory: "
                                f"{exc.strerror}", errno=exc.errno) from exc
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(dir_fd: int, name: str) -> int:
    """Open ``name`` in ``dir_fd`` for reading; refuses symlinks and non-regular files."""
    check_name(name)
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PathError(f"{name} is not a regular file")
    return fd


class Namespace:
    """One caller's staging directories: ``<cache>/ns/<id>/{getFile,putFile}``."""

    def __init__(self, ns_root: str | os.PathLike[str], dn: str, group: str) -> None:
        if not dn:
            raise PathError("No caller identity: a DN is needed for a staging namespace")
        self.ns_root = Path(ns_root)
        self.id = namespace_id(dn, group or "")

    def dir_fd(self, area: str, *, create: bool = True) -> int:
        if area not in AREAS:
            raise PathError(f"Unknown staging area {area!r}")
        return open_dir(self.ns_root, (self.id, area), create=create)

    def path(self, area: str, name: str) -> Path:
        """The final path of a staged file (for logging and the storage plugins)."""
        if area not in AREAS:
            raise PathError(f"Unknown staging area {area!r}")
        return self.ns_root / self.id / area / check_name(name)

    def directory(self, area: str) -> Path:
        """The staging directory of ``area``, created and checked to be a plain directory."""
        os.close(self.dir_fd(area, create=True))
        return self.ns_root / self.id / area
