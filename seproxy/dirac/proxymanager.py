"""Callers' proxies from the site's ProxyManager (``CredentialSource = ProxyManager``).

What DIRAC's ``ProxyManagerClient.downloadProxy`` does, with the service's host
certificate (the host needs ``FullDelegation`` or ``LimitedDelegation`` in the
Registry):

1. ``getStoredProxyStrength(userDN, userGroup, None)``: the key size to make (2048
   when the answer is an error, as DIRAC does);
2. a new key and a certificate request for it, made here (the key never leaves);
3. ``getProxy(userDN, userGroup, requestPEM, lifetime)`` - or ``getVOMSProxy(...,
   vomsAttribute)`` when VOMS is asked for and the group has a ``VOMSRole`` - answers
   the signed chain without key, which is joined to the key made in 2.

The chain is checked before use: it carries our public key, it is the asked DN and
group, and it verifies against the CA directory. It is kept in memory only (never in
``os.environ``, never on disk here) in a bounded LRU cache keyed by (DN, group, VOMS
attribute) until ``renew_margin`` seconds before it expires; concurrent calls of one
user wait for one download. The ProxyManager's own refusals (no stored proxy, missing
delegation property, ...) are raised as ``AuthError`` with DIRAC's message unchanged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from seproxy.config import Config, Registry
from seproxy.errors import AuthError, ConfigError, SeproxyError
from seproxy.security import pki as devpki
from seproxy.security.proxycache import ProxyCache
from seproxy.security.x509 import X509Chain, verify_with_ca_directory

log = logging.getLogger("seproxy.dirac.proxymanager")

SERVICE = "Framework/ProxyManager"
#: What DIRAC's downloadProxy asks for by default (cacheTime 14400 + requiredTimeLeft 1200).
DEFAULT_LIFETIME = 15600
DEFAULT_RENEW_MARGIN = 1200
DEFAULT_CACHE_SIZE = 1000
DEFAULT_STRENGTH = 2048


class ProxyManagerCall(Protocol):
    """Calls one ProxyManager method with the host credentials; DIRAC's result dict."""

    def __call__(self, method: str, *args: Any) -> dict: ...


@dataclass(frozen=True)
class DownloadedProxy:
    """A caller's proxy (PEM: proxy, key, chain) and when it stops being used."""

    pem: bytes = field(repr=False)
    dn: str
    group: str
    not_after: float  # time.time() of the leaf's end of validity

    def seconds_left(self, now: float | None = None) -> float:
        return self.not_after - (time.time() if now is None else now)


def make_request(bits: int) -> tuple[str, Any]:
    """A new RSA key of ``bits`` and a PEM certificate request for it."""
    key = devpki.generate_key(bits)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "seproxy")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii"), key


class ProxyManagerSource:
    """Downloads and caches callers' proxies (see the module doc)."""

    def __init__(self, cfg: Config, *, lifetime: int = DEFAULT_LIFETIME,
                 renew_margin: int = DEFAULT_RENEW_MARGIN, cache_size: int = DEFAULT_CACHE_SIZE,
                 voms: bool = False, call: ProxyManagerCall | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if lifetime <= renew_margin:
            raise ConfigError(f"ProxyLifetime ({lifetime} s) must exceed ProxyRenewMargin ({renew_margin} s)")
        self.cfg = cfg
        self.lifetime, self.renew_margin = int(lifetime), int(renew_margin)
        self.cache_size = max(1, int(cache_size))
        self.voms = voms
        self._call = call or self._rpc
        self._clock = clock
        self._cache: ProxyCache[tuple[str, str, str], DownloadedProxy] = ProxyCache(
            self.cache_size, self.renew_margin, clock)
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str, str], threading.Lock] = {}
        #: number of proxies downloaded (getProxy/getVOMSProxy answers used)
        self.downloads = 0

    # -- public -------------------------------------------------------------------------------
    def proxy(self, dn: str, group: str) -> DownloadedProxy:
        """The caller's proxy, from the cache while it has more than the margin left."""
        if not dn or not group:
            raise AuthError("No registered user and group for this connection")
        voms_attr = self._voms_attribute(group)
        key = (dn, group, voms_attr or "")
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        with self._key_lock(key):
            cached = self._cache.get(key)  # another thread of the same user may have fetched it
            if cached is not None:
                return cached
            try:
                proxy = self._download(dn, group, voms_attr)
            finally:  # waiting threads hold the lock object; new ones find the cache (or retry)
                with self._lock:
                    self._key_locks.pop(key, None)
            with self._lock:
                self.downloads += 1
            return self._cache.add(key, proxy, proxy.not_after)

    def forget(self, dn: str | None = None) -> None:
        """Drop cached proxies (of ``dn``, or all)."""
        self._cache.forget(lambda key: dn is None or key[0] == dn)

    def __len__(self) -> int:
        return len(self._cache)

    # -- internals ----------------------------------------------------------------------------
    def _voms_attribute(self, group: str) -> str | None:
        if not self.voms:
            return None
        return Registry(self.cfg).group_option(group, "VOMSRole", None) or None

    def _key_lock(self, key: tuple[str, str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _download(self, dn: str, group: str, voms_attr: str | None) -> DownloadedProxy:
        strength = self._call("getStoredProxyStrength", dn, group, None)
        bits = strength.get("Value") if isinstance(strength, dict) and strength.get("OK") else None
        if not isinstance(bits, int) or isinstance(bits, bool) or not 1024 <= bits <= 8192:
            bits = DEFAULT_STRENGTH
        request, key = make_request(bits)
        if voms_attr:
            answer = self._call("getVOMSProxy", dn, group, request, self.lifetime, voms_attr)
        else:
            answer = self._call("getProxy", dn, group, request, self.lifetime)
        if not isinstance(answer, dict) or not answer.get("OK"):
            message = str(answer.get("Message", "ProxyManager refused")) if isinstance(answer, dict) \
                else f"Invalid ProxyManager answer {answer!r:.80}"
            log.info("ProxyManager refused the proxy of %s (%s): %s", dn, group, message)
            raise AuthError(message)
        chain = self._check(answer.get("Value"), key, dn, group)
        not_after = chain.not_after.timestamp()
        log.info("Downloaded the proxy of %s (%s), %d s left", dn, group, int(not_after - self._clock()))
        return DownloadedProxy(chain.to_pem(), dn, group, not_after)

    def _check(self, value: Any, key: Any, dn: str, group: str) -> X509Chain:
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        if not isinstance(value, str) or "BEGIN CERTIFICATE" not in value:
            raise AuthError("ProxyManager answered no certificate chain")
        try:
            certs = x509.load_pem_x509_certificates(value.encode("ascii"))
        except ValueError as exc:
            raise AuthError(f"ProxyManager answered an unreadable chain: {exc}") from exc
        chain = X509Chain.from_certificates(certs, key)
        ours = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = chain.leaf.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        if ours != theirs:
            raise AuthError("ProxyManager answered a proxy for another key")
        if chain.identity_dn != dn:
            raise AuthError(f"ProxyManager answered a proxy of {chain.identity_dn}, not of {dn}")
        if chain.dirac_group not in (None, group):
            raise AuthError(f"ProxyManager answered a proxy for group {chain.dirac_group}, not {group}")
        from seproxy.security.locations import ca_directory

        try:
            verify_with_ca_directory(chain, ca_directory(self.cfg))
        except SeproxyError as exc:
            raise AuthError(f"ProxyManager answered a proxy that does not verify: {exc}") from exc
        return chain

    def _rpc(self, method: str, *args: Any) -> dict:
        from seproxy.rpc.client import RPCClient

        client = RPCClient(SERVICE, config=self.cfg, useCertificates=True, timeout=120)
        return getattr(client, method)(*args)


__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_LIFETIME",
    "DEFAULT_RENEW_MARGIN",
    "DownloadedProxy",
    "ProxyManagerSource",
    "make_request",
]
