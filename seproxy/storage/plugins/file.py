"""The ``File`` plugin: a POSIX directory tree (PROTOCOL.md 11.3).

URLs are plain paths ``Path + LFN``. Results and error texts follow DIRAC's
File plugin; on top of it:

- writes (``putFile``, ``getFile``, ``putDirectory``, ``getDirectory``) are
  atomic: temporary name in the target directory, fsync, rename; a failure
  (full disk, size mismatch, vanished source) leaves no file under the final
  name and no temporary file;
- the adler32 is computed while copying and stored in ``user.XrdCks.adler32``
  (XRootD's format) where the filesystem allows it; metadata reads use that
  attribute while the file's mtime matches instead of re-reading the file;
- a ``LocalSource`` with a checksum is copied in the kernel (``sendfile``) and
  that checksum stored, the file is not read for it; a consumable one on the
  same filesystem is renamed into place (atomic, no copy);
- every URL must resolve (symlinks included) inside the plugin's base path,
  else the item fails with a ``PathError`` and nothing is touched; inside a
  directory (``listDirectory``, ``getDirectorySize``, ``getDirectory``) an entry
  whose symlink leads out of the base path is never followed: it is reported as a
  failure by ``listDirectory`` and left out of sizes and copies;
- hidden upload temporaries (``.<name>.seproxy-<random>.part``) are never listed
  or counted; :func:`~seproxy.localfs.remove_orphans` removes those
  whose writer died (the service does at start-up);
- directories are created idempotently: a concurrent creator is not an error.

Plugin option: ``BlockSize`` (copy block in bytes, default 4 MiB).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import Any

from seproxy.errors import PathError
from seproxy.localfs import (
    BLOCK_SIZE,
    LocalSource,
    atomic_copy,
    atomic_move,
    checksum_of,
    dirac_adler_text,
    is_temp_name,
    known_checksum,
    remove_orphans,
)
from seproxy.returnvalues import S_OK, DReturnType
from seproxy.storage.plugin_api import DISK_STATUS, ItemFailed, StorageBase, WithFailures, metadata
from seproxy.storage.utils import is_within


class FileStorage(StorageBase):
    """Local POSIX storage."""

    pluginName = "File"

    def __init__(self, storageName: str, parameters: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(storageName, parameters, **kwargs)
        self.protocol = self.protocolParameters["Protocol"]
        self.block_size = self.option("BlockSize") or BLOCK_SIZE

    def remove_orphans(self) -> tuple[int, int]:
        """Remove upload temporaries left by dead writers under the base path (seproxy).

        Returns ``(files removed, bytes freed)``; see :func:`localfs.remove_orphans`.
        """
        if not self.basePath or not os.path.isdir(self.basePath):
            return 0, 0
        return remove_orphans(self.basePath)

    # -- URLs: plain paths ------------------------------------------------------------------
    def getURLBase(self, withWSUrl: bool = False) -> DReturnType:
        return S_OK(self.basePath)

    def constructURLFromLFN(self, lfn: str, withWSUrl: bool = False) -> DReturnType:
        return S_OK(os.path.join(self.basePath, lfn.lstrip("/")))

    def _check_url(self, url: str) -> None:
        if not isinstance(url, str) or not url or "\0" in url:
            raise PathError(f"Invalid path {url!r}", errno=errno.EINVAL)
        if not self._inside(url):
            raise PathError(
                f"Path {url} is outside the storage base path {self.basePath}", errno=errno.EACCES
            )

    def _inside(self, path: str) -> bool:
        """True if ``path`` resolves (symlinks included) inside the base path."""
        if not self.basePath:
            return True
        return is_within(os.path.realpath(path), os.path.realpath(self.basePath))

    # -- files ------------------------------------------------------------------------------
    def _exists(self, url: str) -> bool:
        return os.path.exists(url)

    def exists(self, path: Any) -> DReturnType:
        # DIRAC: exists never fails; a refused path simply does not exist.
        res = super().exists(path)
        if res["OK"]:
            res["Value"]["Successful"].update(dict.fromkeys(res["Value"]["Failed"], False))
            res["Value"]["Failed"] = {}
        return res

    def _is_file(self, url: str) -> bool:
        if not os.path.exists(url):
            raise ItemFailed("No such file or directory")
        return os.path.isfile(url)

    def _get_file(self, url: str, local_dir: str) -> int:
        dest = os.path.join(local_dir, os.path.basename(url))
        size, _ = atomic_copy(url, dest, block_size=self.block_size, store_checksum=False)
        return size

    def _put_file(self, url: str, src: Any, source_size: int) -> int:
        os.makedirs(os.path.dirname(url), exist_ok=True)  # a concurrent creator is fine
        expected_size = int(source_size or 0)
        checksum = known_checksum(src)
        if isinstance(src, LocalSource) and src.consumable:
            # the caller drops the file afterwards: on the same filesystem, rename it in
            moved = atomic_move(src, url, checksum=checksum, expected_size=expected_size)
            if moved is not None:
                return moved
        size, _ = atomic_copy(
            str(src),
            url,
            block_size=self.block_size,
            expected_size=expected_size,
            known_checksum=checksum,
        )
        return size

    def _remove_file(self, url: str) -> bool:
        try:
            os.unlink(url)
        except FileNotFoundError:
            pass
        return True

    @staticmethod
    def _stat(path: str) -> dict[str, Any]:
        st = os.stat(path)
        is_file = stat.S_ISREG(st.st_mode)
        return metadata(
            ModTime=st.st_mtime,
            Size=st.st_size,
            Mode=stat.S_IMODE(st.st_mode),
            Directory=stat.S_ISDIR(st.st_mode),
            File=is_file,
            Checksum=dirac_adler_text(checksum_of(path, st)) if is_file else "",
            **DISK_STATUS,
        )

    def _file_metadata(self, url: str) -> dict[str, Any]:
        meta = self._stat(url)
        if not meta["File"]:
            raise ItemFailed(os.strerror(errno.EISDIR))
        return meta

    def _file_size(self, url: str) -> int:
        size = os.path.getsize(url)
        if not os.path.isfile(url):
            raise ItemFailed(os.strerror(errno.EISDIR))
        return size

    # -- directories ----------------------------------------------------------------------
    def _is_directory(self, url: str) -> bool:
        if not os.path.exists(url):
            raise ItemFailed(os.strerror(errno.ENOENT))
        return os.path.isdir(url)

    def _create_directory(self, url: str) -> bool:
        try:
            os.makedirs(url)
        except FileExistsError:
            pass  # DIRAC: an existing path (even a file) counts as created
        return True

    @staticmethod
    def _tree_totals(url: str) -> tuple[int, int]:
        files = size = 0
        for root, _dirs, names in os.walk(url):
            for name in names:
                if is_temp_name(name):
                    continue
                files += 1
                size += os.lstat(os.path.join(root, name)).st_size
        return files, size

    def _remove_directory(self, url: str, recursive: bool) -> Any:
        if recursive:
            files, size = self._tree_totals(url)
            try:
                shutil.rmtree(url)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    left_files, left_size = self._tree_totals(url)
                    files, size = files - left_files, size - left_size
                raise ItemFailed({"FilesRemoved": files, "SizeRemoved": size}) from exc
            return {"FilesRemoved": files, "SizeRemoved": size}
        try:
            for child in os.listdir(url):
                full = os.path.join(url, child)
                if os.path.isfile(full):
                    os.unlink(full)
        except FileNotFoundError:
            pass
        return True

    def _list_directory(self, url: str) -> WithFailures:
        dirs: dict[str, Any] = {}
        files: dict[str, Any] = {}
        failures: dict[str, str] = {}
        for child in os.listdir(url):
            if is_temp_name(child):
                continue  # an upload in progress is not a file yet
            full = os.path.join(url, child)
            lfn_path = os.path.join("/", os.path.relpath(full, self.basePath))
            if not self._inside(full):
                failures[lfn_path] = f"Path {full} is outside the storage base path {self.basePath}"
                continue
            try:
                meta = self._stat(full)
            except OSError as exc:
                failures[lfn_path] = str(exc)
                continue
            (files if os.path.isfile(full) else dirs)[lfn_path] = meta
        return WithFailures({"SubDirs": dirs, "Files": files}, failures)

    def _directory_metadata(self, url: str) -> dict[str, Any]:
        meta = self._stat(url)
        if not meta["Directory"]:
            raise ItemFailed(os.strerror(errno.ENOTDIR))
        return meta

    def _directory_size(self, url: str) -> dict[str, int]:
        files = size = subdirs = 0
        for name in os.listdir(url):
            full = os.path.join(url, name)
            if is_temp_name(name) or not self._inside(full):
                continue  # an upload in progress, or a link out of the storage element
            if os.path.isfile(full):
                files += 1
                size += os.path.getsize(full)
            else:
                subdirs += 1
        return {"Files": files, "Size": size, "SubDirs": subdirs}

    def _copy_tree(self, src_dir: str, dest_dir: str, *, from_storage: bool) -> dict[str, int]:
        """Copy a tree atomically file by file; ``from_storage`` skips what a link would
        reach outside the base path (and upload temporaries)."""
        totals = {"Files": 0, "Size": 0}

        def copy(src: str, dst: str) -> str:
            size, _ = atomic_copy(src, dst, block_size=self.block_size)
            totals["Files"] += 1
            totals["Size"] += size
            return dst

        def skipped(directory: str, names: list[str]) -> set[str]:
            return {name for name in names if is_temp_name(name)
                    or not self._inside(os.path.join(directory, name))}

        try:
            shutil.copytree(src_dir, dest_dir, copy_function=copy,
                            ignore=skipped if from_storage else None)
        except (OSError, shutil.Error) as exc:
            raise ItemFailed({"Files": 0, "Size": 0}) from exc
        return totals

    def _get_directory(self, url: str, local_dir: str) -> dict[str, int]:
        return self._copy_tree(url, f"{local_dir}/{os.path.basename(url)}", from_storage=True)

    def _put_directory(self, url: str, src_dir: Any) -> dict[str, int]:
        return self._copy_tree(str(src_dir), url, from_storage=False)


__all__ = ["FileStorage"]
