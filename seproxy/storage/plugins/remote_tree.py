"""Directory operations shared by the plugins whose server lists one directory at a
time and removes one file or one empty directory at a time (XROOT, HTTPS).

A plugin mixes ``RemoteTree`` in before ``StorageBase`` and provides ``_path(url)``,
``_entries(path)`` (``(full path, is directory, size)`` of each child; raises when
``path`` is missing), ``_missing(path)``, ``_remove_file(path)``,
``_remove_empty_directory(path)``, ``_download(path, local)`` and
``_upload(local, path)``; it gets the per-item URL check and DIRAC's ``getDirectorySize``,
``removeDirectory`` (recursive or files only), ``getDirectory`` and
``putDirectory`` primitives.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from seproxy.errors import StorageError
from seproxy.storage.plugin_api import ItemFailed, local_files, transfer_tree
from seproxy.storage.utils import pfnunparse


class RemoteTree:
    """Mixin: directory-wide primitives from per-entry server operations, and the per-item
    URL check (inside the base path; the call's credential usable)."""

    basePath: str
    #: set when the call's credential cannot be used (unreadable...): every item fails with it
    _credential_error: StorageError | None = None

    def _path(self, url: str) -> str:
        raise NotImplementedError

    def _check_url(self, url: str) -> None:
        if self._credential_error is not None:
            raise self._credential_error
        path = self._path(url)
        base = pfnunparse({"Path": self.basePath})["Value"].rstrip("/")
        if base and not (path == base or path.startswith(base + "/")):
            raise StorageError(
                f"Path {path} is outside the storage base path {self.basePath}", errno=errno.EACCES
            )

    def _entries(self, path: str) -> list[tuple[str, bool, int]]:
        raise NotImplementedError

    def _missing(self, path: str) -> bool:
        raise NotImplementedError

    def _remove_file(self, url: str) -> bool:
        raise NotImplementedError

    def _remove_empty_directory(self, path: str) -> None:
        raise NotImplementedError

    def _download(self, path: str, dest: str) -> int:
        raise NotImplementedError

    def _upload(self, source: Any, path: str, source_size: int = 0) -> int:
        raise NotImplementedError

    def _directory_size(self, url: str) -> dict[str, int]:
        files = size = subdirs = 0
        for _full, is_dir, entry_size in self._entries(self._path(url)):
            if is_dir:
                subdirs += 1
            else:
                files += 1
                size += entry_size
        return {"Files": files, "Size": size, "SubDirs": subdirs}

    def _walk(self, path: str) -> tuple[list[tuple[str, int]], list[str]]:
        """All files (path, size) and directories below ``path`` (directories deepest first)."""
        files: list[tuple[str, int]] = []
        dirs: list[str] = []
        for full, is_dir, size in self._entries(path):
            if is_dir:
                sub_files, sub_dirs = self._walk(full)
                files += sub_files
                dirs += [*sub_dirs, full]
            else:
                files.append((full, size))
        return files, dirs

    def _remove_directory(self, url: str, recursive: bool) -> Any:
        path = self._path(url)
        if self._missing(path):
            return {"FilesRemoved": 0, "SizeRemoved": 0} if recursive else True
        if not recursive:
            for full, is_dir, _size in self._entries(path):
                if not is_dir:
                    self._remove_file(full)
            return True
        removed = size = 0
        try:
            files, dirs = self._walk(path)
            for full, file_size in files:
                self._remove_file(full)
                removed += 1
                size += file_size
            for directory in [*dirs, path]:
                self._remove_empty_directory(directory)
        except (OSError, StorageError) as exc:
            raise ItemFailed({"FilesRemoved": removed, "SizeRemoved": size}) from exc
        return {"FilesRemoved": removed, "SizeRemoved": size}

    def _get_directory(self, url: str, local_dir: str) -> dict[str, int]:
        path = self._path(url).rstrip("/")
        target = os.path.join(local_dir, os.path.basename(path))
        items = (
            (full, os.path.join(target, os.path.relpath(full, path)))
            for full, _size in self._walk(path)[0]
        )
        return transfer_tree(items, self._download, local_target=True)

    def _put_directory(self, url: str, src_dir: Any) -> dict[str, int]:
        path = self._path(url).rstrip("/")
        items = ((full, f"{path}/{rel}") for full, rel in local_files(src_dir))
        return transfer_tree(items, self._upload)


__all__ = ["RemoteTree"]
