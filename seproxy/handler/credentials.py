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
               4.4, :mod:`seproxy.security.delegation`), kept in memory and
               reused for the caller's next calls (below); handed to the
               plugins like ``proxymanager``'s
``proxymanager`` the caller's (DN, group) proxy from the site's ProxyManager
               (:mod:`seproxy.dirac.proxymanager`), cached in memory; handed to
               the plugins in memory, written to a private 0600 file only if a
               plugin asks for a file, removed when the call ends
=============  ===============================================================

Delegated proxies are reused: the service asks a client to delegate only when no
proxy of the same caller is kept with more than ``margin`` seconds left (the
``ProxyRenewMargin`` option; ``ProxyCacheSize`` bounds how many are kept). Every
delegation makes a new key and proxy, and a storage client that reads credentials
from files keeps each one it loaded (XRootD's GSI client: ~30 KiB a proxy, for the life
of the process), so one proxy per caller keeps that memory bounded by the callers.
The key is what the connection itself proves (:func:`delegation_key`): the caller's DN
and group, whether its chain is a limited proxy and its VOMS attributes. A limited
caller never gets a full proxy, nor one caller another's; a call whose DN is not the
connection's own (an identity forwarded by a trusted host) is never served from, nor
kept in, the cache.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seproxy.errors import AuthError, ConfigError
from seproxy.security.proxycache import ProxyCache
from seproxy.security.x509 import X509Chain
from seproxy.staging.namespace import check_name
from seproxy.storage.credentials import LazyProxyFile, StorageCredentials

if TYPE_CHECKING:
    from seproxy.dirac.proxymanager import ProxyManagerSource

SOURCES = ("host", "proxydir", "delegation", "proxymanager")
#: Defaults of ``ProxyRenewMargin`` and ``ProxyCacheSize`` (seconds; delegated proxies kept).
DELEGATION_MARGIN = 1200
DELEGATION_CACHE_SIZE = 1000

#: (DN, group, limited, VOMS attributes): whose a delegated proxy is, as its connection proved it.
DelegationKey = tuple[str, str, bool, tuple[str, ...]]


def delegation_key(cred: dict[str, Any], chain: X509Chain | None) -> DelegationKey | None:
    """The cache key of a caller's delegated proxy; None when the caller's DN and group are
    not the connection's own (no chain, no group, or an identity forwarded by a host)."""
    dn, group = cred.get("DN"), cred.get("group")
    if not dn or not group or chain is None or chain.identity_dn != dn:
        return None
    return dn, group, chain.is_limited_proxy, tuple(chain.voms_attributes)


class CredentialSource:
    """Builds the per-call storage credentials of a caller."""

    def __init__(self, kind: str, *, host_cert: str | None = None, host_key: str | None = None,
                 proxy_dir: str | os.PathLike[str] | None = None,
                 scratch_dir: str | os.PathLike[str] | None = None,
                 proxy_manager: ProxyManagerSource | None = None,
                 delegation_margin: float = DELEGATION_MARGIN,
                 delegation_cache_size: int = DELEGATION_CACHE_SIZE,
                 clock: Callable[[], float] = time.time) -> None:
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
        self._delegated: ProxyCache[DelegationKey, bytes] = ProxyCache(
            delegation_cache_size, delegation_margin, clock)
        self._count_lock = threading.Lock()
        #: proxies delegated to this source (each one a client's delegation exchange)
        self.delegations = 0

    def delegated_proxy(self, cred: dict[str, Any], chain: X509Chain | None,
                        delegate: Callable[[], bytes]) -> bytes:
        """The proxy a call of ``cred`` (connected with ``chain``) acts with: the one kept
        for it while it has more than the margin left, else ``delegate()`` (the exchange
        with the client, :mod:`seproxy.security.delegation`), kept for the next calls."""
        key = delegation_key(cred, chain)
        if key is not None:
            kept = self._delegated.get(key)
            if kept is not None:
                return kept
        pem = delegate()
        with self._count_lock:
            self.delegations += 1
        if key is None:
            return pem
        return self._delegated.add(key, pem, X509Chain.from_pem(pem).not_after.timestamp())

    @contextmanager
    def for_caller(self, cred: dict[str, Any], vo: str,
                   delegated: bytes | None = None) -> Iterator[StorageCredentials]:
        """The caller's storage credentials for the duration of one storage call."""
        group = cred.get("group")
        if self.kind == "host":
            yield StorageCredentials(cert=self.host_cert, key=self.host_key, vo=vo, group=group)
        elif self.kind == "proxydir":
            yield StorageCredentials(proxy_path=self._proxy_file(cred), vo=vo, group=group)
        else:
            if self.kind == "proxymanager":
                assert self.proxy_manager is not None
                pem = self.proxy_manager.proxy(cred.get("DN", ""), group or "").pem
            elif delegated:
                pem = delegated
            else:
                raise AuthError("No delegated proxy on this connection (CredentialSource = delegation)")
            with LazyProxyFile(pem, self.scratch_dir) as lazy:
                yield StorageCredentials(proxy_pem=pem, proxy_file=lazy.path, vo=vo, group=group)

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
