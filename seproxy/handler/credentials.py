"""Whose identity the StorageElementProxy uses towards storage (``CredentialSource``).

DIRAC 8.0 downloaded each caller's proxy from the ProxyManager, wrote it under
``BasePath/proxies`` and exported ``X509_USER_PROXY``. seproxy builds a
:class:`StorageCredentials` per call instead and hands it to the StorageElement;
``os.environ`` is never touched.

=============  ===============================================================
source         storage access as
=============  ===============================================================
``host``       the service's own host certificate (embedded default)
``proxydir``   a pre-placed proxy ``<ProxyDir>/<username>-<group>`` (or ``.pem``),
               must be a regular file, not a symlink, mode 0600 or stricter
``delegation`` the proxy the client delegated during the proposal (PROTOCOL
               4.4, :mod:`seproxy.security.delegation`); held by the request's
               handler only, written to a 0600 scratch file for the call
``proxymanager`` the caller's (DN, group) proxy from the site's ProxyManager
               (:mod:`seproxy.dirac.proxymanager`), cached in memory; handed to
               the plugins in memory, written to a private 0600 file only if a
               plugin asks for a file, removed when the call ends
=============  ===============================================================
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seproxy.errors import AuthError, ConfigError
from seproxy.staging.namespace import check_name
from seproxy.storage.credentials import LazyProxyFile, StorageCredentials

if TYPE_CHECKING:
    from seproxy.dirac.proxymanager import ProxyManagerSource

SOURCES = ("host", "proxydir", "delegation", "proxymanager")


class CredentialSource:
    """Builds the per-call storage credentials of a caller."""

    def __init__(self, kind: str, *, host_cert: str | None = None, host_key: str | None = None,
                 proxy_dir: str | os.PathLike[str] | None = None,
                 scratch_dir: str | os.PathLike[str] | None = None,
                 proxy_manager: ProxyManagerSource | None = None) -> None:
        kind = (kind or "host").lower()
        if kind not in SOURCES:
            raise ConfigError(f"CredentialSource must be one of {', '.join(SOURCES)}, not {kind!r}")
        if kind == "proxydir" and not proxy_dir:
            raise ConfigError("CredentialSource = proxydir needs ProxyDir")
        if kind == "proxymanager" and proxy_manager is None:
            raise ConfigError("CredentialSource = proxymanager needs a ProxyManager client")
        self.proxy_manager = proxy_manager
        self.kind = kind
        self.host_cert, self.host_key = host_cert, host_key
        self.proxy_dir = Path(proxy_dir) if proxy_dir else None
        self.scratch_dir = Path(scratch_dir) if scratch_dir else None

    @contextmanager
    def for_caller(self, cred: dict[str, Any], vo: str,
                   delegated: bytes | None = None) -> Iterator[StorageCredentials]:
        """The caller's storage credentials for the duration of one storage call."""
        group = cred.get("group")
        if self.kind == "host":
            yield StorageCredentials(cert=self.host_cert, key=self.host_key, vo=vo, group=group)
        elif self.kind == "proxydir":
            yield StorageCredentials(proxy_path=self._proxy_file(cred), vo=vo, group=group)
        elif self.kind == "proxymanager":
            assert self.proxy_manager is not None
            proxy = self.proxy_manager.proxy(cred.get("DN", ""), group or "")
            with LazyProxyFile(proxy.pem, self.scratch_dir) as lazy:
                yield StorageCredentials(proxy_pem=proxy.pem, proxy_file=lazy.path, vo=vo, group=group)
        else:
            with self._delegated_file(delegated) as path:
                yield StorageCredentials(proxy_path=path, vo=vo, group=group)

    def _proxy_file(self, cred: dict[str, Any]) -> str:
        username, group = cred.get("username"), cred.get("group")
        if not username or not group or username == "anonymous":
            raise AuthError("No registered user and group for this connection")
        base = f"{check_name(username, 'user name')}-{check_name(group, 'group name')}"
        assert self.proxy_dir is not None
        for name in (base, base + ".pem"):
            path = self.proxy_dir / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise AuthError(f"Proxy of {username}@{group} is not a regular file")
            if st.st_mode & 0o077:
                raise AuthError(f"Proxy of {username}@{group} is readable by others (mode "
                                f"{stat.S_IMODE(st.st_mode):o}); refusing it")
            return str(path)
        raise AuthError(f"No proxy for {username}@{group} in the proxy directory")

    @contextmanager
    def _delegated_file(self, pem: bytes | None) -> Iterator[str]:
        if not pem:
            raise AuthError("No delegated proxy on this connection (CredentialSource = delegation)")
        fd, path = tempfile.mkstemp(prefix="delegated-", suffix=".pem",
                                    dir=self.scratch_dir if self.scratch_dir else None)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            yield path
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
