"""TLS transport on pyOpenSSL (the default backend).

Server: host certificate, TLS 1.2/1.3, client certificate required
(``VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT``, depth 50), CA directory used as
an OpenSSL hashed directory with ``X509_V_FLAG_ALLOW_PROXY_CERTS`` (+ CRL flags,
see ``tlsconfig``), session id context ``DIRAC--<port>``, server-side session cache
(``OP_NO_TICKET``: TLS 1.3 tickets only name a cached session, which keeps the
verified peer chain; pyOpenSSL cannot set the cache size, see
``tlsbase.TLSListener``).
Client: proxy or host certificate, server chain verified (unless skip_ca_check),
host name checked (SAN DNS/IP; CN without SAN), SNI, session resumption (sessions
are kept by ``tlsbase.SESSIONS`` only; OpenSSL's client cache is off).
"""

from __future__ import annotations

import errno
import functools
import socket
import time
from typing import Any

from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _ffi
from OpenSSL._util import lib as _lib

from seproxy.errors import ConfigError, RemoteProtocolError, TransportError
from seproxy.rpc.transport import tlsbase, tlsconfig
from seproxy.rpc.transport.base import WANT_READ, WANT_WRITE

_ASN1 = crypto.FILETYPE_ASN1
_CLOSED_ERRNOS = {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ESHUTDOWN}
#: pyOpenSSL's recv_into copies through a temporary buffer: one TLS record per call.
_RECORD = 16384
#: SSL_read straight into the caller's buffer (pyOpenSSL's recv_into allocates a
#: temporary buffer and copies): its private error mapping, when it has one.
_ZERO_COPY_READ = hasattr(SSL.Connection, "_raise_ssl_error")
_WANT_READ_CODE = _lib.SSL_ERROR_WANT_READ
_WANT_WRITE_CODE = _lib.SSL_ERROR_WANT_WRITE
#: OpenSSL's error queue is per thread, and SSL_get_error reads it: "the current thread's
#: error queue must be empty before the TLS/SSL I/O operation is attempted" (SSL_get_error(3)).
#: An error left there by any earlier call on the thread (pyOpenSSL does not clear the queue
#: when it raises SysCallError, e.g. for a write to a peer that went away) turns the next
#: EAGAIN of this non-blocking socket into SSL_ERROR_SYSCALL, "(11, 'EAGAIN')", instead of
#: SSL_ERROR_WANT_READ. So every SSL_read/SSL_write/handshake step starts with a clean queue.
_clear_errors = _lib.ERR_clear_error
#: Plaintext per guarded write (see ``OpenSSLTransport.expect_early_answers``): the memory
#: BIO grows by reallocation, so a few records at a time cost least.
_GUARDED_WRITE = 64 * 1024
#: TLS 1.3 suites, fastest first on CPUs with AES instructions (AES-128-GCM moves
#: about 25 % more bytes per CPU second than AES-256-GCM, ChaCha20 about half);
#: the server's order wins (``OP_CIPHER_SERVER_PREFERENCE``).
TLS13_SUITES = b"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"


def ssl_reason(exc: Exception) -> str:
    """Readable text of a pyOpenSSL error (the OpenSSL reason strings)."""
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args and all(isinstance(a, tuple) for a in args):
        return "; ".join(str(a[-1]) for a in args if a[-1])
    if isinstance(exc, SSL.SysCallError) and exc.args and exc.args[0] == -1:
        return "unexpected EOF (peer closed the connection)"
    return str(exc) or type(exc).__name__


def _verify_callback(conn: SSL.Connection, cert: crypto.X509, errnum: int, depth: int, ok: int) -> bool:
    return tlsbase.VERIFIER.decide(bool(ok), errnum, depth, lambda: crypto.dump_certificate(_ASN1, cert))


def _context(settings: tlsconfig.TLSSettings, *, server: bool) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD if server else SSL.TLS_CLIENT_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    options = SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION
    if server:
        options |= SSL.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_options(options)
    ctx.set_cipher_list(tlsconfig.CIPHERS.encode())
    if not _lib.SSL_CTX_set_ciphersuites(ctx._context, TLS13_SUITES):  # no pyOpenSSL API
        raise ConfigError("Cannot set the TLS 1.3 cipher suites")
    try:
        ctx.use_certificate_chain_file(settings.cert)
        ctx.use_privatekey_file(settings.key)
        ctx.check_privatekey()
    except SSL.Error as exc:
        raise ConfigError(f"Cannot use TLS credentials {settings.cert}: {ssl_reason(exc)}") from None
    try:
        ctx.load_verify_locations(None, settings.ca_dir)
    except SSL.Error as exc:
        raise ConfigError(f"Cannot use CA directory {settings.ca_dir}: {ssl_reason(exc)}") from None
    flags = crypto.X509StoreFlags.ALLOW_PROXY_CERTS
    if settings.crl_flags_wanted:
        flags |= crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL
    ctx.get_cert_store().set_flags(flags)
    mode = SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if server else 0)
    ctx.set_verify(mode, _verify_callback)
    ctx.set_verify_depth(tlsconfig.VERIFY_DEPTH)
    return ctx


def _der(cert: Any) -> bytes:
    """DER bytes of an ``X509 *``."""
    bio = _lib.BIO_new(_lib.BIO_s_mem())
    try:
        if _lib.i2d_X509_bio(bio, cert) != 1:
            raise TransportError("Cannot encode the peer's certificate")
        data = _ffi.new("char**")
        size = _lib.BIO_get_mem_data(bio, data)
        return _ffi.buffer(data[0], size)[:]
    finally:
        _lib.BIO_free(bio)


@functools.lru_cache(maxsize=256)
def _sni(name: str) -> bytes:
    return name.encode("idna")


def _select_alpn(conn: SSL.Connection, offered: list[bytes]) -> bytes:
    if tlsconfig.RESUME_ALPN in offered:
        return tlsconfig.RESUME_ALPN
    return SSL.NO_OVERLAPPING_PROTOCOLS


class OpenSSLBackend(tlsbase.Backend):
    name = "pyopenssl"
    sets_session_cache_size = False  # no SSL_CTX_sess_set_cache_size in pyOpenSSL

    def server_context(self, settings: tlsconfig.TLSSettings, port: int, cfg: Any) -> SSL.Context:
        ctx = _context(settings, server=True)
        ctx.set_session_id(tlsconfig.session_id_context(port))
        # stateful resumption: a stateless ticket carries the peer's leaf certificate only,
        # so a resumed connection would lose the chain its credentials come from
        ctx.set_options(SSL.OP_NO_TICKET)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        ctx.set_timeout(tlsconfig.session_timeout(cfg))
        ctx.set_alpn_select_callback(_select_alpn)
        return ctx

    def client_context(self, settings: tlsconfig.TLSSettings) -> SSL.Context:
        ctx = _context(settings, server=False)
        # tlsbase.SESSIONS keeps the sessions to offer; OpenSSL's own client cache would
        # only grow (up to 20480 sessions of about 16 KB)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.set_alpn_protos([tlsconfig.RESUME_ALPN])
        return ctx

    def wrap(self, context: SSL.Context, sock: socket.socket, *, server_side: bool,
             sni: str | None = None, session: Any = None) -> SSL.Connection:
        conn = SSL.Connection(context, sock)
        # one SSL_write per 1 MiB slice, not one per 16 KiB record (a WANT_WRITE retry
        # passes the same bytes again, which ACCEPT_MOVING_WRITE_BUFFER allows)
        _lib.SSL_clear_mode(conn._ssl, _lib.SSL_MODE_ENABLE_PARTIAL_WRITE)
        if server_side:
            conn.set_accept_state()
        else:
            conn.set_connect_state()
            if sni:
                conn.set_tlsext_host_name(_sni(sni))
            if session is not None:
                conn.set_session(session)
        return conn


class OpenSSLTransport(tlsbase.TLSTransport):
    _conn: SSL.Connection
    #: OpenSSL 4.0 marks the connection failed when a write fails, and every later
    #: SSL_read fails too (openssl/openssl#30631, "won't fix"): the answer a peer sent
    #: before it closed would be lost. 3.x still reads it.
    write_failure_is_fatal = SSL.OPENSSL_VERSION_NUMBER >= 0x40000000
    _guarded = False

    def expect_early_answers(self, enabled: bool) -> None:
        # while enabled and needed, OpenSSL encrypts into a memory BIO and _flush writes
        # the records to the socket: a broken socket is then this transport's error, the
        # SSL object never sees it and still reads what the peer sent before closing
        self._guarded = enabled and self.write_failure_is_fatal

    def _send_guarded(self, view: memoryview) -> int:
        if self._unsent and (state := self._flush()) != 1:
            return state  # the records of the previous write go first
        view = view[:_GUARDED_WRITE]
        ssl = self._conn._ssl
        bio = _lib.BIO_new(_lib.BIO_s_mem())
        if bio == _ffi.NULL:
            raise TransportError(f"{self._WRITE_ERROR}: cannot allocate a memory BIO")
        _lib.BIO_set_mem_eof_return(bio, -1)  # reads from it: "retry", never end of stream
        _lib.SSL_set_bio(ssl, bio, bio)  # the SSL object owns it (and frees the socket BIO)
        try:
            _clear_errors()
            with _ffi.from_buffer(view) as source:
                result = _lib.SSL_write(ssl, source, min(len(view), 0x7FFFFFFF))
            code = _lib.SSL_ERROR_NONE if result > 0 else _lib.SSL_get_error(ssl, result)
            data = _ffi.new("char **")
            size = _lib.BIO_get_mem_data(bio, data)
            if size > 0:  # what the socket takes now goes straight from the BIO, the rest is kept
                self._unsent = memoryview(_ffi.buffer(data[0], size))
                try:
                    self._flush()
                finally:  # never keep a view of the BIO, which is freed below
                    if self._unsent:
                        self._unsent = memoryview(bytes(self._unsent))
        finally:
            _lib.SSL_set_fd(ssl, self._fd)  # reads come from the socket again (BIO freed)
        if result > 0:
            return result
        if code in (_WANT_READ_CODE, _WANT_WRITE_CODE):  # pragma: no cover - not after the handshake
            return WANT_READ if code == _WANT_READ_CODE else WANT_WRITE
        try:
            self._conn._raise_ssl_error(ssl, result)
        except SSL.Error as exc:
            return self._io_error(exc, self._WRITE_ERROR)
        return result  # pragma: no cover - _raise_ssl_error always raises

    def _flush(self) -> int:
        unsent = self._unsent
        while unsent:
            try:
                sent = self._sock.send(unsent)
            except BlockingIOError:
                self._unsent = unsent
                return WANT_WRITE
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            except OSError as exc:
                self._unsent = unsent
                if exc.errno in _CLOSED_ERRNOS:
                    return 0
                raise TransportError(f"{self._WRITE_ERROR}: {exc.strerror or exc}") from None
            unsent = unsent[sent:]
        self._unsent = None
        return 1

    def _io_error(self, exc: SSL.Error, prefix: str) -> int:
        _clear_errors()  # what the failed call left on this thread's queue is handled here
        if isinstance(exc, SSL.WantReadError):
            return WANT_READ
        if isinstance(exc, (SSL.WantWriteError, SSL.WantX509LookupError)):
            return WANT_WRITE
        if isinstance(exc, SSL.ZeroReturnError):
            return 0
        if isinstance(exc, SSL.SysCallError) and exc.args and (
                exc.args[0] in (-1, 0) or exc.args[0] in _CLOSED_ERRNOS):
            return 0
        raise TransportError(f"{prefix}: {ssl_reason(exc)}") from None

    def _recv_into(self, view: memoryview) -> int:
        conn = self._conn
        _clear_errors()
        if not _ZERO_COPY_READ:
            try:
                return conn.recv_into(view, _RECORD)
            except SSL.Error as exc:
                return self._io_error(exc, self._READ_ERROR)
        # OpenSSL decrypts into ``view`` itself (one record per call)
        ssl = conn._ssl
        with _ffi.from_buffer(view, require_writable=True) as target:
            result = _lib.SSL_read(ssl, target, min(len(view), 0x7FFFFFFF))
        return result if result > 0 else self._read_failed(result)

    def _read_failed(self, result: int) -> int:
        """The outcome of an ``SSL_read`` that returned ``result`` <= 0 (zero-copy path)."""
        ssl = self._conn._ssl
        if _lib.SSL_get_error(ssl, result) == _WANT_READ_CODE:
            return WANT_READ  # the usual "nothing yet": no exception raised and caught
        try:
            self._conn._raise_ssl_error(ssl, result)
        except SSL.Error as exc:
            return self._io_error(exc, self._READ_ERROR)
        return result  # pragma: no cover - _raise_ssl_error always raises

    def _fill_body(self, body: memoryview, got: int, length: int, max_size: int | None,
                   after_first: int) -> None:
        # A large body arrives as one TLS record per SSL_read (16 KiB): decrypt each straight
        # to its place through one pointer into the body, without the generic per-read
        # bookkeeping; a read that brings nothing goes the generic way (wait, ping, errors).
        if not _ZERO_COPY_READ or self._closed:
            super()._fill_body(body, got, length, max_size, after_first)
            return
        ssl, read, lock, clear = self._conn._ssl, _lib.SSL_read, self._io_lock, _clear_errors
        start = got
        with _ffi.from_buffer(body, require_writable=True) as base:
            while got < length:
                if max_size is not None and after_first > max_size:
                    raise RemoteProtocolError(f"Read limit exceeded ({max_size} chars)")
                with lock:
                    clear()
                    count = read(ssl, base + got, length - got)
                    if count <= 0:
                        count = self._read_failed(count)
                if count <= 0:
                    if got > start:
                        self._last_activity = time.monotonic()  # what the keep-alive timer reads
                    count = self._read_waiting(body[got:length], count)
                got += count
                after_first += count
        self._last_activity = time.monotonic()

    read_before_wait = not _ZERO_COPY_READ

    def _buffered(self) -> bool:
        # decrypted bytes OpenSSL holds; without read-ahead (never enabled here) it reads
        # no further than the record it needs, so nothing else can wait inside it
        return _lib.SSL_pending(self._conn._ssl) > 0

    def _send(self, view: memoryview) -> int:
        if self._guarded:
            return self._send_guarded(view)
        if self._unsent and (state := self._flush()) != 1:
            return state
        conn = self._conn
        _clear_errors()
        try:
            if not _ZERO_COPY_READ:
                return conn.send(view)
            # what Connection.send does, without its argument checks and exception on WANT_*
            ssl = conn._ssl
            with _ffi.from_buffer(view) as source:
                result = _lib.SSL_write(ssl, source, min(len(view), 0x7FFFFFFF))
            if result > 0:
                return result
            code = _lib.SSL_get_error(ssl, result)
            if code == _WANT_READ_CODE:
                return WANT_READ
            if code == _WANT_WRITE_CODE:
                return WANT_WRITE
            conn._raise_ssl_error(ssl, result)
            return result  # pragma: no cover - _raise_ssl_error always raises
        except SSL.Error as exc:
            return self._io_error(exc, self._WRITE_ERROR)

    def _shutdown(self) -> None:
        if self._handshake_done:
            _clear_errors()
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass

    def _handshake_step(self) -> int:
        _clear_errors()
        try:
            self._conn.do_handshake()
            return 0
        except (SSL.WantReadError, SSL.WantWriteError) as exc:
            return self._io_error(exc, "")
        except SSL.Error as exc:
            raise TransportError(ssl_reason(exc)) from None

    def _peer_certificates_der(self) -> list[bytes]:
        # straight from the X509 pointers (pyOpenSSL would wrap each in an object first)
        ssl = self._conn._ssl
        leaf = _lib.SSL_get_peer_certificate(ssl)  # a new reference
        if leaf == _ffi.NULL:
            return []
        try:
            ders = [_der(leaf)]
        finally:
            _lib.X509_free(leaf)
        chain = _lib.SSL_get_peer_cert_chain(ssl)  # borrowed
        if chain != _ffi.NULL:
            ders.extend(_der(_lib.sk_X509_value(chain, i)) for i in range(_lib.sk_X509_num(chain)))
        return ders

    def _get_session(self) -> Any:
        return self._conn.get_session()

    def _alpn_selected(self) -> bytes | None:
        return self._conn.get_alpn_proto_negotiated() or None

    @property
    def session_reused(self) -> bool:
        return bool(_lib.SSL_session_reused(self._conn._ssl))  # pyOpenSSL has no public API

    @property
    def tls_version(self) -> str:
        return self._conn.get_protocol_version_name()


BACKEND = OpenSSLBackend()
BACKEND.transport_class = OpenSSLTransport

