"""The ``S3`` plugin: any S3 endpoint through boto3.

Protocol section options: ``Host``, ``Port``, ``Path`` (= bucket),
``SecureConnection`` (default True: https), ``Aws_access_key_id`` /
``Aws_secret_access_key`` (DIRAC's names), ``Region``, ``Timeout`` (seconds for
connect and read, default 30), ``Retries`` (attempts per request, default 2),
``MultipartThreshold`` / ``MultipartChunkSize``
(bytes, default 64 MiB / 16 MiB).

Credentials, first found wins: the call's ``StorageCredentials`` (``s3_*``),
the section options, then boto3's own chain (``AWS_*`` variables, shared
files) -- read by boto3, never written by seproxy.

URLs are ``s3://host:port/<bucket>/<lfn>``; the object key is the LFN without
its leading ``/``. Directories are key prefixes; ``createDirectory`` writes a
zero-byte ``<key>/`` marker so an empty directory exists. Uploads stream from
the local file (multipart above the threshold) with the adler32 in the object
metadata ``x-amz-meta-checksum`` (as DIRAC's S3 plugin; taken from a
``LocalSource`` when the caller knows it, else read from the file first); downloads use parallel
ranged GETs into a temporary file that is renamed only when complete and its
adler32 matches the stored one.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from seproxy.errors import StorageError
from seproxy.localfs import atomic_write, file_adler32, known_checksum
from seproxy.storage.plugin_api import (
    DISK_STATUS,
    ItemFailed,
    StorageBase,
    local_files,
    metadata,
    transfer_tree,
)

try:  # optional dependency: pip install seproxy[s3]
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # pragma: no cover - reported when the plugin is built
    boto3 = None

ENOENT_TEXT = os.strerror(errno.ENOENT)
_SESSION_LOCK = threading.Lock()
_SHARED_SESSION: Any = None


def _new_client(explicit_keys: bool, **kwargs: Any) -> Any:
    """An S3 client (``kwargs`` go to ``Session.client``).

    With explicit keys it comes from one shared boto3 session (the service model is
    loaded once: ~20 ms per client instead of ~300 ms; the keys stay in the client).
    Without keys a fresh session resolves boto3's chain (AWS_* variables...) now.
    """
    global _SHARED_SESSION
    if not explicit_keys:
        return boto3.session.Session().client("s3", **kwargs)
    with _SESSION_LOCK:  # creating clients from one session is not thread-safe; using them is
        if _SHARED_SESSION is None:
            _SHARED_SESSION = boto3.session.Session()
        return _SHARED_SESSION.client("s3", **kwargs)


def _missing(exc: Exception) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in (
        "404",
        "NoSuchKey",
    )


class S3Storage(StorageBase):
    """Objects in one bucket of an S3-compatible endpoint."""

    pluginName = "S3"
    srmSpecificParse = False
    _OUTPUT_PROTOCOLS = ["file", "s3", "http", "https"]

    def __init__(self, storageName: str, parameters: dict[str, Any], **kwargs: Any) -> None:
        if boto3 is None:
            raise StorageError("The S3 plugin needs boto3 (pip install 'seproxy[s3]')")
        super().__init__(storageName, parameters, **kwargs)
        self.secure = self.option("SecureConnection")
        scheme = "https" if self.secure else "http"
        port = self.option("Port") or (443 if self.secure else 80)
        self.bucketName = str(parameters["Path"]).strip("/")
        timeout = self.option("Timeout")
        creds = self.credentials
        if creds.has_s3_keys:
            keys = {
                "aws_access_key_id": creds.s3_access_key,
                "aws_secret_access_key": creds.s3_secret_key,
                "aws_session_token": creds.s3_session_token,
            }
        elif self.option("Aws_access_key_id") and self.option("Aws_secret_access_key"):
            keys = {
                "aws_access_key_id": self.option("Aws_access_key_id"),
                "aws_secret_access_key": self.option("Aws_secret_access_key"),
            }
        else:
            keys = {}
        self.s3_client = _new_client(
            bool(keys),
            endpoint_url=f"{scheme}://{parameters['Host']}:{port}",
            region_name=self.option("Region"),
            config=BotoConfig(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": self.option("Retries"), "mode": "standard"},
                s3={"addressing_style": "path"},
                signature_version="s3v4",
            ),
            **keys,
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=self.option("MultipartThreshold"),
            multipart_chunksize=self.option("MultipartChunkSize"),
            max_concurrency=self.option("MaxConcurrency"),
        )

    # -- keys ---------------------------------------------------------------------------
    def _key(self, url: str) -> str:
        path = urlparse(url).path if "://" in url else url
        prefix = f"/{self.bucketName}/"
        if not path.startswith(prefix):
            raise StorageError(f"URL {url} is not in bucket {self.bucketName}", errno=errno.EINVAL)
        key = path[len(prefix) :]
        if not key:
            raise StorageError(f"URL {url} names no object", errno=errno.EINVAL)
        return key

    def _check_url(self, url: str) -> None:
        self._key(url)

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.s3_client.head_object(Bucket=self.bucketName, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise StorageError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StorageError(str(exc)) from exc

    def _objects(self, prefix: str, delimiter: str | None = "/") -> Iterator[tuple[str, Any]]:
        """Yield ("file", obj) and ("dir", prefix) entries under ``prefix``."""
        kwargs: dict[str, Any] = {"Bucket": self.bucketName, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            for page in self.s3_client.get_paginator("list_objects_v2").paginate(**kwargs):
                for entry in page.get("CommonPrefixes", []):
                    yield "dir", entry["Prefix"]
                for obj in page.get("Contents", []):
                    yield "file", obj
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(str(exc)) from exc

    def _dir_exists(self, key: str) -> bool:
        prefix = key.rstrip("/") + "/"
        try:
            res = self.s3_client.list_objects_v2(Bucket=self.bucketName, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(str(exc)) from exc
        return bool(res.get("KeyCount"))

    @staticmethod
    def _file_meta(size: int, modified: Any, checksum: str) -> dict[str, Any]:
        return metadata(
            File=True,
            Size=int(size),
            Checksum=checksum,
            Mode=0o644,
            ModTime=modified.timestamp() if modified is not None else 0.0,
            **DISK_STATUS,
        )

    # -- files --------------------------------------------------------------------------
    def _exists(self, url: str) -> bool:
        key = self._key(url)
        return self._head(key) is not None or self._dir_exists(key)

    def _is_file(self, url: str) -> bool:
        key = self._key(url)
        if self._head(key) is not None:
            return True
        if self._dir_exists(key):
            return False
        raise ItemFailed("No such file or directory")

    def _file_metadata(self, url: str) -> dict[str, Any]:
        key = self._key(url)
        head = self._head(key)
        if head is None:
            if self._dir_exists(key):
                raise ItemFailed(os.strerror(errno.EISDIR))
            raise ItemFailed(ENOENT_TEXT)
        return self._file_meta(
            head["ContentLength"],
            head.get("LastModified"),
            head.get("Metadata", {}).get("checksum", ""),
        )

    def _file_size(self, url: str) -> int:
        return int(self._file_metadata(url)["Size"])

    def _download(self, key: str, dest: str) -> int:
        head = self._head(key)
        if head is None:
            raise FileNotFoundError(errno.ENOENT, ENOENT_TEXT, f"{self.bucketName}/{key}")
        expected = head.get("Metadata", {}).get("checksum", "")
        try:
            with atomic_write(dest) as fh:
                self.s3_client.download_fileobj(
                    self.bucketName, key, fh, Config=self.transfer_config
                )
                fh.flush()
                if expected and file_adler32(fh.name) != expected:
                    raise StorageError(f"Checksum mismatch downloading {key} (expected {expected})")
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(str(exc)) from exc
        return os.path.getsize(dest)

    def _get_file(self, url: str, local_dir: str) -> int:
        key = self._key(url)
        return self._download(key, os.path.join(local_dir, os.path.basename(key)))

    def _upload(self, source: Any, key: str, source_size: int = 0) -> int:
        src = str(source)
        size = os.path.getsize(src)
        if os.path.isdir(src):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), src)
        # the object metadata is sent first: the checksum must be known before the upload
        # (a LocalSource carries it: one read; a bare path is read once more for it)
        checksum = known_checksum(source) or file_adler32(src)
        try:
            with open(src, "rb") as fh:
                self.s3_client.upload_fileobj(
                    fh,
                    self.bucketName,
                    key,
                    Config=self.transfer_config,
                    ExtraArgs={"Metadata": {"checksum": checksum}},
                )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(str(exc)) from exc
        head = self._head(key)
        stored = int(head["ContentLength"]) if head else -1
        if (source_size and source_size != stored) or stored != size:
            self._delete(key)
            raise ItemFailed(
                f"Source and destination file sizes do not match "
                f"({source_size or size} vs {stored})."
            )
        return stored

    def _put_file(self, url: str, src: Any, source_size: int) -> int:
        return self._upload(src, self._key(url), int(source_size or 0))

    def _delete(self, key: str) -> None:
        try:
            self.s3_client.delete_object(Bucket=self.bucketName, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(str(exc)) from exc

    def _remove_file(self, url: str) -> bool:
        self._delete(self._key(url))
        return True

    # -- directories ----------------------------------------------------------------------
    def _is_directory(self, url: str) -> bool:
        key = self._key(url)
        if self._dir_exists(key):
            return True
        if self._head(key) is not None:
            return False
        raise ItemFailed(ENOENT_TEXT)

    def _create_directory(self, url: str) -> bool:
        key = self._key(url).rstrip("/") + "/"
        if not self._dir_exists(key):
            try:
                self.s3_client.put_object(Bucket=self.bucketName, Key=key, Body=b"")
            except (ClientError, BotoCoreError) as exc:
                raise StorageError(str(exc)) from exc
        return True

    def _list_directory(self, url: str) -> dict[str, Any]:
        prefix = self._key(url).rstrip("/") + "/"
        if not self._dir_exists(prefix):
            raise FileNotFoundError(errno.ENOENT, ENOENT_TEXT, url)
        files: dict[str, Any] = {}
        dirs: dict[str, Any] = {}
        for kind, entry in self._objects(prefix):
            if kind == "dir":
                dirs["/" + entry.rstrip("/")] = metadata(Directory=True)
            elif entry["Key"] != prefix:
                files["/" + entry["Key"]] = self._file_meta(
                    entry["Size"], entry.get("LastModified"), ""
                )
        return {"SubDirs": dirs, "Files": files}

    def _directory_metadata(self, url: str) -> dict[str, Any]:
        key = self._key(url)
        if self._dir_exists(key):
            return metadata(Directory=True, Mode=0o755)
        if self._head(key) is not None:
            raise ItemFailed(os.strerror(errno.ENOTDIR))
        raise ItemFailed(ENOENT_TEXT)

    def _directory_size(self, url: str) -> dict[str, int]:
        prefix = self._key(url).rstrip("/") + "/"
        if not self._dir_exists(prefix):
            raise FileNotFoundError(errno.ENOENT, ENOENT_TEXT, url)
        files = size = subdirs = 0
        for kind, entry in self._objects(prefix):
            if kind == "dir":
                subdirs += 1
            elif entry["Key"] != prefix:
                files += 1
                size += int(entry["Size"])
        return {"Files": files, "Size": size, "SubDirs": subdirs}

    def _remove_directory(self, url: str, recursive: bool) -> Any:
        prefix = self._key(url).rstrip("/") + "/"
        files = size = 0
        try:
            for kind, entry in self._objects(prefix, None if recursive else "/"):
                if kind != "file":
                    continue
                self._delete(entry["Key"])
                if not entry["Key"].endswith("/"):
                    files += 1
                    size += int(entry["Size"])
            if recursive:
                self._delete(prefix)
        except StorageError as exc:
            if recursive:
                raise ItemFailed({"FilesRemoved": files, "SizeRemoved": size}) from exc
            raise
        return {"FilesRemoved": files, "SizeRemoved": size} if recursive else True

    def _get_directory(self, url: str, local_dir: str) -> dict[str, int]:
        prefix = self._key(url).rstrip("/") + "/"
        target = os.path.join(local_dir, os.path.basename(prefix.rstrip("/")))
        items = (
            (entry["Key"], os.path.join(target, entry["Key"][len(prefix) :]))
            for _kind, entry in self._objects(prefix, None)
            if not entry["Key"].endswith("/")
        )
        return transfer_tree(items, self._download, local_target=True, require_files=True)

    def _put_directory(self, url: str, src_dir: Any) -> dict[str, int]:
        prefix = self._key(url).rstrip("/") + "/"
        items = ((full, prefix + rel) for full, rel in local_files(src_dir))
        return transfer_tree(items, self._upload)


__all__ = ["S3Storage"]
