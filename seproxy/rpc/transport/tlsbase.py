"""Backend-independent TLS logic: handshake loop, peer credentials, resumption, reload.

A backend module (``tls_openssl``, ``tls_m2crypto``) subclasses :class:`TLSTransport`
(five non-blocking primitives) and provides a :class:`Backend` (how to build a
context and wrap a socket).  Everything else - timeouts, the verify policy
(``tlsconfig.Verifier``), the credential dict, client session caching keyed by
host:port + credentials (only for servers selecting ``tlsconfig.RESUME_ALPN``), server
session id context, context reload every
``ContextLifeTime`` seconds - lives here once.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import logging
import socket
import time
from typing import Any

from seproxy.errors import AuthError, SeproxyError, TransportError
from seproxy.rpc.transport import tlsconfig
from seproxy.rpc.transport.base import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_RPC_TIMEOUT,
    WANT_READ,
    WANT_WRITE,
    Listener,
    Transport,
    connected_socket,
    listening_socket,
)

VERIFIER = tlsconfig.Verifier()
LOG = logging.getLogger("seproxy.transport")


class Backend:
    """What a TLS library must provide besides its transport class."""

    name = ""
    transport_class: type[TLSTransport]
    #: True when ``server_context`` bounds the session cache to ``SessionCacheSize``
    #: itself; otherwise the listener rebuilds its context to stay within the bound.
    sets_session_cache_size = False

    def server_context(self, settings: tlsconfig.TLSSettings, port: int, cfg: Any) -> Any:
        raise NotImplementedError

    def client_context(self, settings: tlsconfig.TLSSettings) -> Any:
        raise NotImplementedError

    def wrap(self, context: Any, sock: socket.socket, *, server_side: bool,
             sni: str | None = None, session: Any = None) -> Any:
        raise NotImplementedError


class TLSTransport(Transport):
    """A ``dips`` connection; ``handshake()`` must complete before any frame."""

    _READ_ERROR = "Error in _read"
    _WRITE_ERROR = "Error in _write"
    read_size = 64 * 1024

    def __init__(self, sock: socket.socket, conn: Any, *, server_side: bool,
                 settings: tlsconfig.TLSSettings, cfg: Any, sessions: tlsconfig.SessionCache | None = None,
                 session_key: Any = None, keepalive_lapse: float = 0.0,
                 hostname: str | None = None) -> None:
        super().__init__(sock, server_side=server_side, keepalive_lapse=keepalive_lapse)
        self._conn = conn
        self._settings = settings
        self._cfg = cfg
        self._sessions = sessions
        self._session_key = session_key
        self._hostname = hostname
        self._handshake_done = False
        self._ready = False  # set once the handshake (and the session bookkeeping) is done
        self._peer_ders: list[bytes] | None = None
        self._credentials: tuple[Any, dict] | None = None

    # -- backend primitives (besides _recv_into/_send/_shutdown) -------------------------
    def _handshake_step(self) -> int:
        """0 when the handshake is complete, else WANT_READ/WANT_WRITE; raises
        ``TransportError`` with the library's reason on failure."""
        raise NotImplementedError

    def _peer_certificates_der(self) -> list[bytes]:
        """The peer's certificate and the chain it sent, leaf first, as DER."""
        raise NotImplementedError

    def _get_session(self) -> Any:
        raise NotImplementedError

    def _alpn_selected(self) -> bytes | None:
        """The ALPN protocol the handshake agreed on (None: none, or not supported)."""
        return None

    @property
    def session_reused(self) -> bool | None:
        """Whether the handshake resumed a TLS session (None when unknown)."""
        return None

    @property
    def tls_version(self) -> str:
        raise NotImplementedError

    # -- interface ----------------------------------------------------------------------
    def handshake(self, timeout: float = DEFAULT_CONNECTION_TIMEOUT, *, hostname: str | None = None) -> None:
        if self._handshake_done:
            return
        self._check_open()
        if hostname is not None:
            self._hostname = hostname
        deadline = time.monotonic() + timeout
        try:
            while (want := self.handshake_step()) != 0:
                if not self._wait_fd(want, deadline, "handshake"):
                    raise TransportError(f"TLS handshake with {self.id} timed out after {timeout:g} s")
        except BaseException:
            if self.server_side:
                self._linger(deadline)
            self.close()
            raise

    def handshake_step(self) -> int:
        """One non-blocking step of the handshake: 0 once it is complete (and the peer's
        certificate is there), else WANT_READ/WANT_WRITE.  ``handshake()`` loops on it;
        the benchmark drives both ends of a connection with it in one thread."""
        VERIFIER.start(self._settings, self._hostname)
        try:
            with self._io_lock:
                want = self._handshake_step()
        except TransportError as exc:
            raise tlsconfig.handshake_error(self.id, str(exc), VERIFIER.error()) from None
        finally:
            VERIFIER.start(None, None)  # type: ignore[arg-type]
        if want == 0:
            self._handshake_done = True
            # a client that may keep the session does so on its first receive (below)
            self._ready = not self._closed and (self._sessions is None or self._session_key is None)
            if self.server_side and not self._peer_certificates():
                raise AuthError(f"TLS handshake with {self.id} failed: the peer sent no certificate")
        return want

    def _peer_certificates(self) -> list[bytes]:
        if self._peer_ders is None:
            self._peer_ders = self._peer_certificates_der()
        return self._peer_ders

    def _linger(self, deadline: float, grace: float = 1.0) -> None:
        """After a refused handshake: send FIN after the alert and read what the client
        still sends (bounded), so that closing does not reset the connection before the
        client has read the alert that says why it was refused."""
        until = min(deadline, time.monotonic() + grace)
        try:
            self._sock.shutdown(socket.SHUT_WR)
            while self._wait_fd(WANT_READ, until, "linger"):
                if not self._sock.recv(65536):
                    break
        except OSError:
            pass

    def _credentials_pair(self) -> tuple[Any, dict]:
        if not self._handshake_done:
            raise TransportError("TLS handshake not done")
        if self._credentials is None:
            self._credentials = tlsconfig.credentials_for(self._peer_certificates(), self._cfg)
        return self._credentials

    def peer_credentials(self) -> dict:
        return dict(self._credentials_pair()[1])

    def peer_chain(self) -> Any:
        return self._credentials_pair()[0]

    def receive_frame_view(self, max_size: int | None = None) -> memoryview:
        if not self._handshake_done:
            raise TransportError("TLS handshake not done")
        payload = super().receive_frame_view(max_size)
        if self._sessions is not None and self._session_key is not None:
            # TLS 1.3 tickets arrive after the handshake: keep the session once data flowed,
            # and only for servers that said they resume sessions (see tlsconfig.RESUME_ALPN)
            if self._alpn_selected() == tlsconfig.RESUME_ALPN:
                self._sessions.put(self._session_key, self._get_session())
            self._sessions = None
            self._ready = not self._closed
        return payload

    def _check_sendable(self) -> None:
        if not self._handshake_done:
            raise TransportError("TLS handshake not done")
        super()._check_sendable()


class TLSListener(Listener):
    """Accepts TCP connections and wraps them; the context is rebuilt every
    ``ContextLifeTime`` seconds (on the next accept).

    Resumable sessions live in the context's OpenSSL cache (each with the client's
    verified chain).  OpenSSL bounds it to 20480 sessions; a smaller
    ``SessionCacheSize`` is set on the context where the library allows it (M2Crypto),
    else the context is rebuilt after ``SessionCacheSize / 2`` connections (a handshake
    stores at most two sessions: OpenSSL's two TLS 1.3 tickets).
    """

    def __init__(self, sock: socket.socket, backend: Backend, cfg: Any) -> None:
        super().__init__(sock)
        self._backend = backend
        self._cfg = cfg
        self.context_generation = 0
        self._reload()

    def _reload(self) -> None:
        self._settings = tlsconfig.server_settings(self._cfg)
        self._context = self._backend.server_context(self._settings, self.port, self._cfg)
        self._context_time = time.monotonic()
        self._lifetime = tlsconfig.context_lifetime(self._cfg)
        size = tlsconfig.session_cache_size(self._cfg)
        self._rotate_after = (max(1, size // 2) if size < tlsconfig.OPENSSL_SESSION_CACHE_SIZE
                              and not self._backend.sets_session_cache_size else None)
        self._accepted = 0
        self.context_generation += 1

    def _wrap(self, sock: socket.socket) -> Transport:
        if (time.monotonic() - self._context_time >= self._lifetime
                or (self._rotate_after is not None and self._accepted >= self._rotate_after)):
            try:
                self._reload()
            except SeproxyError as exc:  # keep serving with the previous context
                self._context_time, self._accepted = time.monotonic(), 0
                LOG.error("TLS context reload failed, keeping the previous one: %s", exc)
        self._accepted += 1
        conn = self._backend.wrap(self._context, sock, server_side=True)
        return self._backend.transport_class(sock, conn, server_side=True, settings=self._settings,
                                             cfg=self._cfg)


def listen(backend: Backend, host: str, port: int, *, cfg: Any, backlog: int = 128) -> TLSListener:
    sock = listening_socket(host, port, backlog)
    try:
        return TLSListener(sock, backend, cfg)
    except BaseException:
        sock.close()
        raise


@functools.lru_cache(maxsize=256)
def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


_CLIENT_CONTEXTS: dict[str, tlsconfig.TimedCache] = {}
SESSIONS = tlsconfig.SessionCache()
# drop library objects while their libraries are still loaded (M2Crypto frees at exit)
atexit.register(SESSIONS.clear)
atexit.register(_CLIENT_CONTEXTS.clear)


def open_client(backend: Backend, host: str, port: int, *, cfg: Any,
                timeout: float = DEFAULT_CONNECTION_TIMEOUT, proxy_location: str | None = None,
                use_certificates: bool = False, skip_ca_check: bool = False,
                server_hostname: str | None = None, keepalive_lapse: float = 0.0) -> TLSTransport:
    """A TCP-connected client transport whose TLS handshake is still to be done; it offers
    the TLS session kept for this server and these credentials, if any."""
    settings, lifetime = tlsconfig.client_setup(cfg, proxy_location=proxy_location,
                                                use_certificates=use_certificates,
                                                skip_ca_check=skip_ca_check)
    cache = _CLIENT_CONTEXTS.get(backend.name)
    if cache is None:
        cache = _CLIENT_CONTEXTS.setdefault(backend.name, tlsconfig.TimedCache(backend.client_context))
    context = cache.get(settings, lifetime)
    sock = connected_socket(host, port, timeout)
    name = server_hostname or host
    key = (backend.name, host, port, name, settings)
    try:
        conn = backend.wrap(context, sock, server_side=False, sni=None if _is_ip(name) else name,
                            session=SESSIONS.get(key))
        return backend.transport_class(sock, conn, server_side=False, settings=settings, cfg=cfg,
                                       sessions=SESSIONS, session_key=key,
                                       keepalive_lapse=keepalive_lapse, hostname=name)
    except BaseException:
        sock.close()
        raise


def connect(backend: Backend, host: str, port: int, *, cfg: Any,
            timeout: float = DEFAULT_CONNECTION_TIMEOUT, proxy_location: str | None = None,
            use_certificates: bool = False, skip_ca_check: bool = False,
            server_hostname: str | None = None, keepalive_lapse: float = 0.0) -> TLSTransport:
    start = time.monotonic()
    transport = open_client(backend, host, port, cfg=cfg, timeout=timeout,
                            proxy_location=proxy_location, use_certificates=use_certificates,
                            skip_ca_check=skip_ca_check, server_hostname=server_hostname,
                            keepalive_lapse=keepalive_lapse)
    try:
        transport.handshake(max(0.001, timeout - (time.monotonic() - start)))
    except BaseException:
        SESSIONS.discard(transport._session_key)
        transport.close()
        raise
    transport.settimeout(DEFAULT_RPC_TIMEOUT)
    return transport


__all__ = [
    "VERIFIER",
    "WANT_READ",
    "WANT_WRITE",
    "Backend",
    "TLSListener",
    "TLSTransport",
    "connect",
    "listen",
    "open_client",
]
