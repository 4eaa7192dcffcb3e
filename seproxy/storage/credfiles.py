"""Content-addressed copies of credentials for client libraries that want file paths.

The XRootD GSI client and OpenSSL (client certificates for HTTPS) read
credentials from files, and XRootD caches what it read *by path*. Handing such
a library ``credential_file(pem)`` -- ``<private dir>/<sha256>.pem``, written
once with mode 0600 in a 0700 directory of this process -- gives one path per
credential content, forever: a path never stands for two identities, and the
digest is a key for connection pools. A copy unused for ``IDLE_SECONDS`` is
removed (the connections that used it are long closed by then), the directory
when the process exits.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from seproxy.errors import StorageError
from seproxy.security.names import name_to_dn
from seproxy.security.x509 import proxy_info

IDLE_SECONDS = 3600.0
#: Credential files are small (a proxy is a few KiB); more is not a credential.
MAX_CREDENTIAL_BYTES = 1 << 20


class CredentialFiles:
    """The private directory and its content-addressed credential copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._last_used: dict[str, float] = {}

    def _directory(self) -> Path:
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix="seproxy-creds-"))  # mode 0700
            # the copies are secrets: gone with the process
            atexit.register(shutil.rmtree, self._dir, ignore_errors=True)
        return self._dir

    def store(self, pem: bytes) -> tuple[str, Path]:
        """(sha256 hex, path) of a file holding exactly ``pem``."""
        digest = hashlib.sha256(pem).hexdigest()
        with self._lock:
            directory = self._directory()
            path = directory / f"{digest}.pem"
            if not path.exists():
                tmp = directory / f".{digest}.{threading.get_ident()}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(pem)
                os.replace(tmp, path)
            now = time.monotonic()
            self._last_used[digest] = now
            self._sweep(directory, now)
        return digest, path

    def _sweep(self, directory: Path, now: float) -> None:
        for digest, used in list(self._last_used.items()):
            if now - used > IDLE_SECONDS:
                del self._last_used[digest]
                for stale in directory.glob(f"{digest}*.pem"):
                    stale.unlink(missing_ok=True)


_FILES = CredentialFiles()


def credential_file(pem: bytes) -> tuple[str, Path]:
    """(sha256 hex, path) of this process's private copy of ``pem``."""
    return _FILES.store(pem)


def read_credential(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a credential file; ``StorageError`` naming it when unreadable."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CREDENTIAL_BYTES + 1)
    except OSError as exc:
        raise StorageError(f"Cannot read the {what} {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_CREDENTIAL_BYTES:
        raise StorageError(f"The {what} {path} is larger than a credential file can be")
    return data


def proxy_bytes(credentials: Any) -> bytes | None:
    """The PEM of a credential's proxy: in memory (``proxy_pem``, when the credential
    source holds it so) or read from ``proxy_path``; None when it has no proxy."""
    pem = getattr(credentials, "proxy_pem", None)
    if pem:
        return bytes(pem)
    if credentials.proxy_path:
        return read_credential(credentials.proxy_path, "proxy")
    return None


def identity_of(pem: bytes) -> str:
    """The DN a PEM chain stands for: its first certificate that is not a proxy ("" if none)."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return ""
    for cert in certs:
        if proxy_info(cert) is None:
            return name_to_dn(cert.subject)
    return name_to_dn(certs[0].issuer) if certs else ""


__all__ = ["IDLE_SECONDS", "credential_file", "identity_of", "proxy_bytes", "read_credential"]
