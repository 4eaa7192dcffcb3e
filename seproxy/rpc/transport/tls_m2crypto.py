"""TLS transport on M2Crypto (DIRAC's own TLS stack; extra ``seproxy[m2crypto]``).

Same behaviour as ``tls_openssl`` (TLS 1.2/1.3, client certificate required,
proxies allowed, CRL option, host-name check, SNI, resumption, context reload);
selected with ``/DIRAC/Security/TLSBackend = m2crypto``.  The socket is
non-blocking and every M2Crypto call is made with a zero timeout, so waits go
through the shared ``poll`` loop of ``base.Transport``.
"""

from __future__ import annotations

import ctypes
import socket
import threading
from typing import Any

from M2Crypto import SSL, X509, m2
from M2Crypto.SSL.Session import Session

from seproxy.errors import ConfigError, TransportError
from seproxy.rpc.transport import tlsbase, tlsconfig
from seproxy.rpc.transport.base import WANT_READ, WANT_WRITE

_OP_NO_COMPRESSION = getattr(m2, "SSL_OP_NO_COMPRESSION", 0x00020000)
_OP_CIPHER_SERVER_PREFERENCE = getattr(m2, "SSL_OP_CIPHER_SERVER_PREFERENCE", 0x00400000)
_OP_NO_RENEGOTIATION = getattr(m2, "SSL_OP_NO_RENEGOTIATION", 0x40000000)
_OP_NO_TICKET = getattr(m2, "SSL_OP_NO_TICKET", 0x00004000)
_SESS_CACHE_OFF, _SESS_CACHE_SERVER = 0, 2
_EOF_TEXTS = ("unexpected eof", "connection reset", "broken pipe")


_ALERTS = threading.local()


def _libssl() -> ctypes.CDLL | None:
    """The libssl M2Crypto runs on, for what it does not wrap (ALPN, SSL_session_reused)."""
    try:
        lib = ctypes.CDLL("libssl.so.3")
        lib.OpenSSL_version.restype = ctypes.c_char_p
        lib.OpenSSL_version.argtypes = [ctypes.c_int]
        if lib.OpenSSL_version(0).decode() != m2.OPENSSL_VERSION_TEXT:
            return None
        lib.SSL_session_reused.argtypes = [ctypes.c_void_p]
        lib.SSL_session_reused.restype = ctypes.c_int
        lib.SSL_set_alpn_protos.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint]
        lib.SSL_set_alpn_protos.restype = ctypes.c_int
        lib.SSL_get0_alpn_selected.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                               ctypes.POINTER(ctypes.c_uint)]
        lib.SSL_get0_alpn_selected.restype = None
        lib.SSL_CTX_set_alpn_select_cb.argtypes = [ctypes.c_void_p, _ALPN_CB, ctypes.c_void_p]
        lib.SSL_CTX_set_alpn_select_cb.restype = None
        return lib
    except (OSError, AttributeError):
        return None


#: int cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
#:        const unsigned char *in, unsigned int inlen, void *arg)
_ALPN_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                            ctypes.POINTER(ctypes.c_ubyte), ctypes.c_void_p, ctypes.c_uint,
                            ctypes.c_void_p)
_ALPN_WIRE = bytes([len(tlsconfig.RESUME_ALPN)]) + tlsconfig.RESUME_ALPN
_TLSEXT_ERR_OK, _TLSEXT_ERR_NOACK = 0, 3


@_ALPN_CB
def _select_alpn(ssl: int, out: Any, outlen: Any, offered: int, offered_len: int, arg: int) -> int:
    data = ctypes.string_at(offered, offered_len)
    index = 0
    while index < len(data):
        size = data[index]
        if data[index + 1:index + 1 + size] == tlsconfig.RESUME_ALPN:
            out[0] = offered + index + 1
            outlen[0] = size
            return _TLSEXT_ERR_OK
        index += 1 + size
    return _TLSEXT_ERR_NOACK


_LIBSSL = _libssl()


def _info_callback(where: int, ret: int, ssl_ptr: Any) -> None:
    """Remember the last alert received in this thread: with a zero timeout M2Crypto
    reports a fatal alert on read as "no data", this says why the peer gave up."""
    if where & m2.SSL_CB_READ_ALERT:
        desc = m2.ssl_get_alert_desc_v(ret)
        if desc != "close notify":
            _ALERTS.last = f"{m2.ssl_get_alert_type_v(ret)} alert {desc}"


def _verify_callback(ok: int, store: X509.X509_Store_Context) -> int:
    cert = store.get_current_cert()
    return int(tlsbase.VERIFIER.decide(bool(ok), store.get_error(), store.get_error_depth(),
                                       cert.as_der))


def _context(settings: tlsconfig.TLSSettings, *, server: bool) -> SSL.Context:
    ctx = SSL.Context("tls")  # TLS 1.2+ (M2Crypto disables SSLv2/3, TLS 1.0/1.1)
    options = (m2.SSL_OP_NO_SSLv2 | m2.SSL_OP_NO_SSLv3 | m2.SSL_OP_NO_TLSv1 | m2.SSL_OP_NO_TLSv1_1
               | _OP_NO_COMPRESSION | _OP_NO_RENEGOTIATION)
    if server:
        options |= _OP_CIPHER_SERVER_PREFERENCE
    ctx.set_options(options)
    ctx.set_cipher_list(tlsconfig.CIPHERS)
    try:  # (Context.load_cert_chain trips over an error OpenSSL 3 leaves queued)
        m2.ssl_ctx_use_cert_chain(ctx.ctx, settings.cert)
        m2.ssl_ctx_use_privkey(ctx.ctx, settings.key)
        if not m2.ssl_ctx_check_privkey(ctx.ctx):
            raise SSL.SSLError("private key does not match the certificate")
        while m2.err_get_error():
            pass
    except (SSL.SSLError, OSError) as exc:
        raise ConfigError(f"Cannot use TLS credentials {settings.cert}: {exc}") from None
    if ctx.load_verify_locations(capath=settings.ca_dir) != 1:
        raise ConfigError(f"Cannot use CA directory {settings.ca_dir}")
    flags = m2.X509_V_FLAG_ALLOW_PROXY_CERTS
    if settings.crl_flags_wanted:
        flags |= m2.X509_V_FLAG_CRL_CHECK | m2.X509_V_FLAG_CRL_CHECK_ALL
    ctx.get_cert_store().set_flags(flags)
    mode = SSL.verify_peer | (SSL.verify_fail_if_no_peer_cert if server else 0)
    ctx.set_verify(mode, tlsconfig.VERIFY_DEPTH, _verify_callback)
    ctx.set_info_callback(_info_callback)
    return ctx


#: Bytes asked of one ``ssl_read`` (a TLS record carries at most 16 KiB).
_READ_MAX = 65536


class _Connection(SSL.Connection):
    """An M2Crypto connection whose clean-up never touches the socket, which the
    transport owns.  M2Crypto's own ``close()`` (also run from ``__del__``, at any later
    time) sends a shutdown alert on the file descriptor, which by then may belong to
    another connection, and frees the socket BIO that the SSL object frees again."""

    def close(self, freeBio: bool | None = True) -> None:  # M2Crypto's signature
        if self._closed:
            return
        self._closed = True
        if getattr(self, "sslbio", None):
            m2.bio_free(self.sslbio)  # a BIO_f_ssl without close flag: the SSL stays
        self.sslbio = None
        self.sockbio = None  # owned by the SSL object since ssl_set_bio, freed with it
        self._bio_freed = True


class M2CryptoBackend(tlsbase.Backend):
    name = "m2crypto"
    sets_session_cache_size = True

    def server_context(self, settings: tlsconfig.TLSSettings, port: int, cfg: Any) -> SSL.Context:
        ctx = _context(settings, server=True)
        ctx.set_session_id_ctx(tlsconfig.session_id_context(port))
        # stateful resumption, so a resumed session keeps the verified peer chain
        # (see tls_openssl); the cache holds at most SessionCacheSize sessions
        ctx.set_options(_OP_NO_TICKET)
        ctx.set_session_cache_mode(_SESS_CACHE_SERVER)
        ctx.set_session_timeout(tlsconfig.session_timeout(cfg))
        m2.ssl_ctx_set_cache_size(ctx.ctx, tlsconfig.session_cache_size(cfg))
        if _LIBSSL is not None:
            _LIBSSL.SSL_CTX_set_alpn_select_cb(int(ctx.ctx), _select_alpn, None)
        return ctx

    def client_context(self, settings: tlsconfig.TLSSettings) -> SSL.Context:
        ctx = _context(settings, server=False)
        ctx.set_session_cache_mode(_SESS_CACHE_OFF)  # tlsbase.SESSIONS keeps them
        return ctx

    def wrap(self, context: SSL.Context, sock: socket.socket, *, server_side: bool,
             sni: str | None = None, session: Any = None) -> SSL.Connection:
        conn = _Connection(context, sock, family=sock.family)
        conn.setup_ssl()
        conn.setblocking(0)
        m2.ssl_set_mode(conn.ssl, m2.SSL_MODE_ENABLE_PARTIAL_WRITE | m2.SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER)
        if server_side:
            conn.set_accept_state()
        else:
            conn.set_connect_state()
            if sni:
                conn.set_tlsext_host_name(sni)
            if session is not None:
                conn.set_session(session)
            if _LIBSSL is not None:
                _LIBSSL.SSL_set_alpn_protos(int(conn.ssl), _ALPN_WIRE, len(_ALPN_WIRE))
        return conn


class M2CryptoTransport(tlsbase.TLSTransport):
    _conn: SSL.Connection

    def _want(self) -> int:
        """What a call that returned "nothing" meant: WANT_READ/WANT_WRITE, or 0 for a
        closed connection (M2Crypto returns None for SSL_ERROR_ZERO_RETURN too)."""
        code = m2.ssl_get_error(self._conn.ssl, -1)
        if code == m2.ssl_error_want_write:
            return WANT_WRITE
        if code in (m2.ssl_error_want_read, m2.ssl_error_want_x509_lookup):
            return WANT_READ
        return 0

    def _failure(self, exc: Exception, prefix: str) -> int:
        text = str(exc)
        if any(t in text.lower() for t in _EOF_TEXTS):
            return 0
        raise TransportError(f"{prefix}: {text}" if prefix else text) from None

    # Every call starts with an empty OpenSSL error queue: M2Crypto leaves errors of
    # earlier calls (e.g. a shutdown on a reset socket) in the thread's queue, where
    # SSL_get_error would take them for errors of the next, unrelated connection.
    def _recv_into(self, view: memoryview) -> int:
        _ALERTS.last = None
        m2.err_clear_error()
        try:
            # M2Crypto allocates the size asked for; SSL_read returns one record at most
            data = m2.ssl_read(self._conn.ssl, min(len(view), _READ_MAX), 0.0)
        except (SSL.SSLError, OSError) as exc:
            return self._failure(exc, self._READ_ERROR)
        if data is None:
            want = self._want()
            if want == 0 and _ALERTS.last:
                raise TransportError(f"{self._READ_ERROR}: {_ALERTS.last}")
            return want
        count = len(data)
        view[:count] = data
        return count

    def _send(self, view: memoryview) -> int:
        m2.err_clear_error()
        try:
            sent = m2.ssl_write(self._conn.ssl, view, 0.0)
        except (SSL.SSLError, OSError) as exc:
            return self._failure(exc, self._WRITE_ERROR)
        return self._want() if sent < 0 else sent

    def _shutdown(self) -> None:
        if self._handshake_done:
            m2.err_clear_error()
            try:
                m2.ssl_shutdown(self._conn.ssl)
            except (SSL.SSLError, OSError):
                pass
            m2.err_clear_error()
        self._conn.close()

    def _handshake_step(self) -> int:
        ssl = self._conn.ssl
        m2.err_clear_error()
        try:
            done = m2.ssl_accept(ssl, 0.0) if self.server_side else m2.ssl_connect(ssl, 0.0)
        except (SSL.SSLError, OSError) as exc:
            raise TransportError(str(exc)) from None
        if done == 1:
            return 0
        want = self._want()
        if want == 0:
            raise TransportError("the peer closed the connection during the handshake")
        return want

    def _peer_certificates_der(self) -> list[bytes]:
        leaf = self._conn.get_peer_cert()
        if leaf is None:
            return []
        chain = self._conn.get_peer_cert_chain()
        return [leaf.as_der()] + ([c.as_der() for c in chain] if chain is not None else [])

    def _get_session(self) -> Any:
        # Connection.get_session() frees a session it does not own: take a reference
        session = m2.ssl_get1_session(self._conn.ssl)
        return None if session is None else Session(session, _pyfree=1)

    def _alpn_selected(self) -> bytes | None:
        if _LIBSSL is None:
            return None
        data, size = ctypes.c_void_p(), ctypes.c_uint()
        _LIBSSL.SSL_get0_alpn_selected(int(self._conn.ssl), ctypes.byref(data), ctypes.byref(size))
        return ctypes.string_at(data.value, size.value) if data.value and size.value else None

    @property
    def session_reused(self) -> bool | None:
        if _LIBSSL is None:
            return None
        return bool(_LIBSSL.SSL_session_reused(int(self._conn.ssl)))

    @property
    def tls_version(self) -> str:
        return self._conn.get_version()


BACKEND = M2CryptoBackend()
BACKEND.transport_class = M2CryptoTransport

