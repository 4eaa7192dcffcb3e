"""Per-call storage credentials.

A ``StorageCredentials`` travels with one ``StorageElement`` (and its plugins)
instead of through ``os.environ``: two threads acting for two users never see
each other's identity. Each plugin takes what it understands:

=================  ===========================================================
plugin             uses
=================  ===========================================================
File               nothing (the service's own file-system rights)
S3                 ``s3_access_key``/``s3_secret_key``/``s3_session_token``
XROOT              ``proxy_pem`` or ``proxy_path``, else ``cert``/``key`` (GSI, through
                   the URL of each connection, never the environment)
HTTPS              ``proxy_pem`` or ``proxy_path``, else ``cert``/``key`` (TLS client
                   certificate); ``bearer_token`` (``Authorization: Bearer``)
DIP                ``proxy_location()`` or ``cert``/``key`` for the DISET connection
=================  ===========================================================

A proxy comes either as a file (``proxy_path``: a pre-placed proxy) or in memory
(``proxy_pem``: PEM proxy, key, chain, e.g. downloaded from the ProxyManager). A
plugin that can take memory reads ``proxy_pem``; one that needs a file calls
``proxy_location()``, which for an in-memory proxy writes it once, on first use, to
a mode-0600 file in a private (0700) directory that :class:`LazyProxyFile` removes
when the call ends.

``vo`` and ``group`` tell the facade which VO the caller acts for when the
``StorageElement`` is built without an explicit ``vo``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True)
class StorageCredentials:
    """Identity material for one storage call (immutable; never written to the environment)."""

    proxy_path: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_session_token: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    vo: str | None = None
    group: str | None = None
    #: an in-memory proxy (PEM: proxy certificate, its key, the chain)
    proxy_pem: bytes | None = field(default=None, repr=False)
    #: writes ``proxy_pem`` to a private file on demand (set with ``proxy_pem``)
    proxy_file: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    @property
    def has_s3_keys(self) -> bool:
        return bool(self.s3_access_key and self.s3_secret_key)

    @property
    def has_proxy(self) -> bool:
        return bool(self.proxy_path or self.proxy_pem)

    def proxy_location(self) -> str | None:
        """A file holding the proxy, for plugins that need one (None: no proxy)."""
        if self.proxy_path:
            return str(self.proxy_path)
        if self.proxy_file is not None:
            return self.proxy_file()
        return None


class LazyProxyFile:
    """Writes an in-memory proxy to a private file only if asked (``path()``); removes
    the file and its directory on exit. Use one per storage call::

        with LazyProxyFile(pem, scratch_dir) as lazy:
            creds = StorageCredentials(proxy_pem=pem, proxy_file=lazy.path)
    """

    def __init__(self, pem: bytes, scratch_dir: str | os.PathLike[str] | None = None) -> None:
        self._pem = pem
        self._scratch = scratch_dir
        self._dir: str | None = None
        self._path: str | None = None
        self._lock = threading.Lock()

    def path(self) -> str:
        with self._lock:
            if self._path is None:
                self._dir = tempfile.mkdtemp(prefix="proxy-", dir=self._scratch)  # mode 0700
                path = os.path.join(self._dir, "proxy.pem")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(self._pem)
                self._path = path
            return self._path

    @property
    def written(self) -> bool:
        return self._path is not None

    def __enter__(self) -> LazyProxyFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with self._lock:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = self._path = None


__all__ = ["LazyProxyFile", "StorageCredentials"]
