"""What both TLS backends share: options, credential files, host-name check, caches.

Options (CFG paths; both backends read the same ones):

=================================  ===========  ============================================
option                             default      meaning
=================================  ===========  ============================================
``/DIRAC/Security/TLSBackend``     pyopenssl    ``pyopenssl`` or ``m2crypto``
``/DIRAC/Security/CheckCRLs``      auto         ``yes``: every CA of a chain needs a CRL
                                                (``<hash>.r0`` in the CA directory) and
                                                revoked certificates are refused;
                                                ``auto``: the same when the CA directory
                                                holds CRL files, a CA without CRL passes;
                                                ``no``: no CRL checks (DIRAC's behaviour)
``/DIRAC/Security/ContextLifeTime``  21600      seconds before a context (certificates,
                                                CAs, CRLs) is rebuilt on next use
``/DIRAC/Security/SessionTimeout``  3600        TLS session lifetime (resumption)
``/DIRAC/Security/SessionCacheSize`` 4096       sessions a server keeps for resumption
                                                (OpenSSL's own bound is 20480; each holds the
                                                client's verified chain, about 7 KB);
                                                see ``tlsbase.TLSListener``
=================================  ===========  ============================================

CA directory and credentials come from ``seproxy.security.locations`` (DIRAC's
look-up order).  TLS 1.2 and 1.3 only; TLS 1.2 ciphers: forward-secret AEAD first,
never NULL/EXPORT/RC4/3DES/MD5.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any, Generic, TypeVar

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from seproxy.config import schema
from seproxy.errors import AuthError, ConfigError, TransportError

CIPHERS = ("ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:ECDHE+AES:DHE+AES:AES256-GCM-SHA384:"
           "AES128-GCM-SHA256:!aNULL:!eNULL:!EXPORT:!RC4:!3DES:!DES:!MD5:!PSK:!SRP:!SEED:!IDEA")
VERIFY_DEPTH = 50
#: ALPN protocol a seproxy client offers and a seproxy server selects.  A client keeps a
#: TLS session for resumption only when the server selected it: DIRAC's own servers
#: (which ignore ALPN) stall 10 s on a resumed TLS 1.3 session, so they never see one.
RESUME_ALPN = b"dips-seproxy"
DEFAULT_CONTEXT_LIFETIME = schema.default("/DIRAC/Security/ContextLifeTime")
DEFAULT_SESSION_TIMEOUT = schema.default("/DIRAC/Security/SessionTimeout")
#: Seconds a client's resolved credential and CA locations are reused (at most
#: ContextLifeTime): a proxy or CA directory appearing elsewhere is seen this late.
SETUP_TTL = 60.0
#: OpenSSL's built-in bound of a server's session cache (SSL_SESSION_CACHE_MAX_SIZE_DEFAULT).
OPENSSL_SESSION_CACHE_SIZE = 20480
#: Our default bound: ~30 MiB of sessions at most (DIRAC clients never resume, yet every
#: one of their connections leaves a session behind).
DEFAULT_SESSION_CACHE_SIZE = schema.default("/DIRAC/Security/SessionCacheSize")
#: OpenSSL verify error codes we name ourselves.
X509_V_ERR_UNABLE_TO_GET_CRL = 3
CRL_MODES = ("yes", "no", "auto")

T = TypeVar("T")


@dataclass(frozen=True)
class TLSSettings:
    """Everything a context is built from (also the cache key of client contexts)."""

    cert: str
    key: str
    ca_dir: str
    check_crls: str          # "yes" | "no" | "auto"
    verify_peer: bool = True  # client: False with skip_ca_check (host name still checked)
    stamp: tuple = ()         # mtimes of the credential files (a new proxy, a new context)

    @property
    def crl_flags_wanted(self) -> bool:
        return self.check_crls == "yes" or (self.check_crls == "auto" and has_crls(self.ca_dir))

    @property
    def missing_crl_ok(self) -> bool:
        return self.check_crls == "auto"


def has_crls(ca_dir: str) -> bool:
    try:
        return any(".r" in name and name.rsplit(".r", 1)[1].isdigit() for name in os.listdir(ca_dir))
    except OSError:
        return False


def _cfg_value(cfg: Any, path: str) -> Any:
    return schema.value(cfg, path)


def _locations() -> Any:
    from seproxy.security import locations

    return locations


def _stamp(*paths: str) -> tuple:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino, st.st_mode))
        except OSError:
            out.append(None)
    return tuple(out)


def _crl_mode(cfg: Any) -> str:
    mode = _cfg_value(cfg, "/DIRAC/Security/CheckCRLs")
    mode = {"true": "yes", "false": "no", "on": "yes", "off": "no", "1": "yes", "0": "no"}.get(mode, mode)
    if mode not in CRL_MODES:
        raise ConfigError(f"/DIRAC/Security/CheckCRLs = {mode!r}: use yes, no or auto")
    return mode


def _ca_dir(cfg: Any) -> str:
    ca_dir = _locations().ca_directory(cfg)
    if not ca_dir or not Path(ca_dir).is_dir():
        raise ConfigError(f"No CA directory found (looked for {ca_dir or 'any'})")
    return str(ca_dir)


def server_settings(cfg: Any) -> TLSSettings:
    """The host certificate, key and CA directory a server uses."""
    cert, key = _locations().host_credentials(cfg)
    return TLSSettings(str(cert), str(key), _ca_dir(cfg), _crl_mode(cfg),
                       stamp=_stamp(str(cert), str(key)))


def client_settings(cfg: Any, *, proxy_location: str | None, use_certificates: bool,
                    skip_ca_check: bool) -> TLSSettings:
    """Credentials a client presents: the host certificate (``use_certificates``; the
    caller resolves ``/DIRAC/Security/UseServerCertificate``) or the proxy file."""
    return client_setup(cfg, proxy_location=proxy_location, use_certificates=use_certificates,
                        skip_ca_check=skip_ca_check)[0]


#: Environment variables the CA, host credential and proxy look-ups read
#: (``security.locations``); a change of one of them is a new look-up.
_CA_ENV = ("X509_CERT_DIR", "DIRAC")
_HOST_ENV = (*_CA_ENV, "DIRAC_X509_HOST_CERT", "DIRAC_X509_HOST_KEY")
_PROXY_ENV = (*_CA_ENV, "GRID_PROXY_FILE", "X509_USER_PROXY")
_SETUPS: weakref.WeakKeyDictionary[Any, dict[tuple, _Setup]] = weakref.WeakKeyDictionary()
_NO_CFG_SETUPS: dict[tuple, _Setup] = {}
_SETUPS_LOCK = threading.Lock()


def client_setup(cfg: Any, *, proxy_location: str | None, use_certificates: bool,
                 skip_ca_check: bool) -> tuple[TLSSettings, float]:
    """``client_settings`` and ``context_lifetime`` of a connect, without redoing the
    look-ups each time: where the files and the CA directory are is resolved once per
    configuration generation, environment and ``ContextLifeTime`` (as the context built
    from it); the credential files are stat'ed on every call (a new proxy, a new stamp)."""
    key = (getattr(cfg, "generation", 0), proxy_location, use_certificates, skip_ca_check,
           tuple(map(os.environ.get, _HOST_ENV if use_certificates
                     else _PROXY_ENV if not proxy_location else _CA_ENV)))
    now = time.monotonic()
    with _SETUPS_LOCK:
        table = _NO_CFG_SETUPS if cfg is None else _SETUPS.setdefault(cfg, {})
        entry = table.get(key)
    if entry is None or now >= entry.expires:
        if use_certificates:
            cert, key_file = map(str, _locations().host_credentials(cfg))
        else:
            cert = key_file = str(_locations().proxy_location(proxy_location))
        lifetime = context_lifetime(cfg)
        entry = _Setup(now + min(lifetime, SETUP_TTL), lifetime, TLSSettings(
            cert, key_file, _ca_dir(cfg), _crl_mode(cfg), verify_peer=not skip_ca_check))
        with _SETUPS_LOCK:
            if len(table) >= 64:  # a few (proxy, options) per configuration in practice
                table.clear()
            table[key] = entry
    settings = entry.settings
    stamp = _stamp(settings.cert) if settings.key == settings.cert else _stamp(settings.cert, settings.key)
    if stamp != settings.stamp:  # the same object while the files stay (cheap cache keys)
        if stamp[0] is None or not S_ISREG(stamp[0][3]):
            raise AuthError(f"Client credentials not found: {settings.cert}")
        settings = entry.settings = dataclasses.replace(settings, stamp=stamp)
    return settings, entry.lifetime


class _Setup:
    __slots__ = ("expires", "lifetime", "settings")

    def __init__(self, expires: float, lifetime: float, settings: TLSSettings) -> None:
        self.expires, self.lifetime, self.settings = expires, lifetime, settings


def context_lifetime(cfg: Any) -> float:
    return float(_cfg_value(cfg, "/DIRAC/Security/ContextLifeTime"))


def session_timeout(cfg: Any) -> int:
    return int(_cfg_value(cfg, "/DIRAC/Security/SessionTimeout"))


def session_cache_size(cfg: Any) -> int:
    size = int(_cfg_value(cfg, "/DIRAC/Security/SessionCacheSize"))
    if size < 1:
        raise ConfigError(f"/DIRAC/Security/SessionCacheSize = {size}: must be at least 1")
    return size


def session_id_context(port: int) -> bytes:
    """DIRAC's server session id context ``DIRAC-<host>-<port>`` with an empty host."""
    return f"DIRAC--{port}".encode()


# -- host name check ------------------------------------------------------------------------
def _dns_match(pattern: str, hostname: str) -> bool:
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern == hostname:
        return True
    if pattern.startswith("*.") and "*" not in pattern[2:]:
        head, _, tail = hostname.partition(".")
        return bool(head) and tail == pattern[2:] and tail.count(".") >= 1
    return False


def hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """SAN DNS/IP entries decide; the subject CN only counts without a SAN."""
    try:
        ip = ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        ip = None
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        if ip is not None:
            return ip in san.get_values_for_type(x509.IPAddress)
        return any(_dns_match(name, hostname) for name in san.get_values_for_type(x509.DNSName))
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return any(isinstance(n, str) and (_dns_match(n, hostname) or (ip is not None and n == str(ip)))
               for n in names)


def load_der_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    """Certificates from DER, leaf first, without repeats (a client side chain holds the leaf)."""
    certs: list[x509.Certificate] = []
    for der in ders:
        cert = x509.load_der_x509_certificate(der)
        if cert not in certs:
            certs.append(cert)
    return certs


#: Credential dicts of recently seen peer chains (reconnects and resumed sessions
#: present the same chain again), keyed by the configuration generation and the chain's
#: exact DER bytes; an entry is reused for at most this many seconds.  Only chains the
#: TLS library has verified in this handshake (or in the one of the resumed session)
#: ever reach ``credentials_for``.
CREDENTIALS_TTL = 60.0
CREDENTIALS_MAX = 1024
_CREDENTIALS: weakref.WeakKeyDictionary[Any, OrderedDict[tuple, tuple[float, Any, dict]]] = (
    weakref.WeakKeyDictionary())
_NO_CFG_CREDENTIALS: OrderedDict[tuple, tuple[float, Any, dict]] = OrderedDict()
_CREDENTIALS_LOCK = threading.Lock()


def credentials_for(ders: Sequence[bytes], cfg: Any) -> tuple[Any, dict]:
    """(X509Chain, credential dict) of a verified peer chain given as DER, leaf first
    (PROTOCOL.md 8.1).  ``secondsLeft`` is always as of now."""
    if not ders:
        raise AuthError("The peer sent no certificate")
    # the default group and VO come from the Registry: a reloaded configuration is a new key
    key = (getattr(cfg, "generation", 0), *ders)
    now = time.monotonic()
    with _CREDENTIALS_LOCK:  # one cache per configuration object (its Registry)
        cache = _NO_CFG_CREDENTIALS if cfg is None else _CREDENTIALS.setdefault(cfg, OrderedDict())
        hit = cache.get(key)
    if hit is not None and now - hit[0] < CREDENTIALS_TTL:
        chain, creds = hit[1], hit[2].copy()
        creds["secondsLeft"] = max(0, creds["secondsLeft"] - int(now - hit[0]))
    else:
        chain, creds = _build_credentials(load_der_chain(ders), cfg)
        with _CREDENTIALS_LOCK:
            cache[key] = (now, chain, creds.copy())
            while len(cache) > CREDENTIALS_MAX:
                cache.popitem(last=False)
    if creds["secondsLeft"] <= 0:  # a resumed session must not outlive the chain
        raise AuthError("The peer's certificate chain has expired")
    return chain, creds


def _build_credentials(certs: list[x509.Certificate], cfg: Any) -> tuple[Any, dict]:
    from seproxy.config import Registry
    from seproxy.security.credentials import credential_dict
    from seproxy.security.x509 import X509Chain

    chain = X509Chain.from_certificates(certs)
    vo_default = _cfg_value(cfg, "/DIRAC/VirtualOrganization") or "unknown"
    registry = Registry(cfg) if cfg is not None else None
    return chain, credential_dict(chain, registry, vo_default)


# -- caches ---------------------------------------------------------------------------------
class TimedCache(Generic[T]):
    """Contexts by settings, rebuilt after ``lifetime`` seconds (ContextLifeTime)."""

    def __init__(self, build: Callable[[TLSSettings], T], max_entries: int = 32) -> None:
        self._build = build
        self._entries: OrderedDict[Any, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, settings: TLSSettings, lifetime: float, extra: Any = None) -> T:
        key = (settings, extra)
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now - entry[0] < lifetime:
                self._entries.move_to_end(key)
                return entry[1]
        value = self._build(settings) if extra is None else self._build(settings, extra)  # type: ignore[call-arg]
        with self._lock:
            self._entries[key] = (now, value)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SessionCache:
    """Client TLS sessions by (host, port, SNI name, credentials) for resumption."""

    def __init__(self, max_entries: int = 256) -> None:
        self._sessions: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: Any) -> Any:
        with self._lock:
            return self._sessions.get(key)

    def put(self, key: Any, session: Any) -> None:
        if session is None:
            return
        with self._lock:
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)

    def discard(self, key: Any) -> None:
        with self._lock:
            self._sessions.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()


# -- certificate verification (both backends) ----------------------------------------------
def verify_error_text(errnum: int) -> str:
    try:
        from OpenSSL._util import ffi, lib

        return ffi.string(lib.X509_verify_cert_error_string(errnum)).decode()
    except Exception:  # noqa: BLE001 - only a message
        return f"verify error {errnum}"


class Verifier:
    """Per-thread verification state: the handshake runs in one thread, and the
    verify callback of either backend runs inside it.

    ``decide`` implements the policy: CA errors fail (unless the client skips the
    CA check), a CA without CRL passes in ``auto`` CRL mode, and a client also
    checks the server's host name on the leaf (independently of the CA check).
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def start(self, settings: TLSSettings, hostname: str | None) -> None:
        self._local.__dict__.update(settings=settings, hostname=hostname, error=None,
                                    host_checked=False)

    def error(self) -> str | None:
        return getattr(self._local, "error", None)

    def decide(self, ok: bool, errnum: int, depth: int, der: Callable[[], bytes]) -> bool:
        local = self._local
        settings: TLSSettings | None = getattr(local, "settings", None)
        if settings is None:
            return bool(ok)
        if not ok:
            if (errnum == X509_V_ERR_UNABLE_TO_GET_CRL and settings.missing_crl_ok) or not settings.verify_peer:
                ok = True
            else:
                if local.error is None:
                    subject = ""
                    try:
                        from seproxy.security.names import name_to_dn

                        subject = f", {name_to_dn(x509.load_der_x509_certificate(der()).subject)}"
                    except Exception:  # noqa: BLE001 - only a message
                        pass
                    local.error = f"{verify_error_text(errnum)} (depth {depth}{subject})"
                return False
        if depth == 0 and local.hostname and not local.host_checked:
            local.host_checked = True
            if not hostname_matches(x509.load_der_x509_certificate(der()), local.hostname):
                local.error = f"server certificate does not match host name {local.hostname!r}"
                return False
        return True


def handshake_error(peer: str, reason: str, verify_error: str | None) -> TransportError:
    if verify_error:
        reason = f"{reason}: {verify_error}" if reason else verify_error
    return TransportError(f"TLS handshake with {peer} failed: {reason}")
