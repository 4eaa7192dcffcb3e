"""The StorageElementProxy's HTTP download server (DIRAC API names).

``ThreadedSocketServer(ThreadingMixIn, TCPServer)`` runs one daemon thread per
request, bounded: at most ``max_connections`` requests are served at once and a
request beyond that gets ``503`` at once. Until its whole request header has arrived
(and, with an ``ssl_context``, its TLS handshake is done) a connection waits in the
non-blocking :mod:`~seproxy.http.intake`, with one deadline (``header_timeout``) for
handshake and header together: slow or silent clients never hold a thread.
``HttpThread(port, path)`` is DIRAC's daemon thread serving the key
register; it binds when constructed (so a busy port fails loudly), starts itself,
and runs the register's background expiry purger.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import ssl
import threading
from typing import Any

from seproxy.http.access import HttpStorageAccessHandler
from seproxy.http.intake import Intake
from seproxy.staging.keyregister import KeyLookup

log = logging.getLogger(__name__)

_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 24\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
         b"Too many connections...\n")


class ThreadedSocketServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threading TCP server with a connection bound and optional TLS (DIRAC name).

    Accepted connections first wait in an :class:`~seproxy.http.intake.Intake` (TLS
    handshake and request header read without blocking, one deadline for both); only a
    connection whose whole request header has arrived takes one of the
    ``max_connections`` worker slots, or gets ``503`` when none is free.
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, server_address: tuple[str, int], RequestHandlerClass: Any,  # noqa: N803
                 bind_and_activate: bool = True, *, max_connections: int = 64,
                 ssl_context: ssl.SSLContext | None = None, handshake_timeout: float = 10.0,
                 header_timeout: float | None = None, max_pending: int = 4096,
                 max_pending_per_ip: int = 256) -> None:
        if ":" in server_address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._headers: dict[int, bytes] = {}
        self._headers_lock = threading.Lock()
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)
        self.intake = Intake(self._request_ready, ssl_context=ssl_context,
                             header_timeout=header_timeout if header_timeout is not None
                             else handshake_timeout,
                             max_pending=max_pending, max_per_ip=max_pending_per_ip)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        self.intake.add(request, client_address)

    def _request_ready(self, request: Any, client_address: Any, header: bytes) -> None:
        """Called by the intake with a whole request header: a worker slot, or 503."""
        if not self._slots.acquire(blocking=False):
            log.warning("HTTP: refusing %s, too many connections", client_address)
            try:
                request.settimeout(5)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        with self._headers_lock:
            self._headers[id(request)] = header
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._headers_lock:
                self._headers.pop(id(request), None)
            self._slots.release()
            raise

    def take_header(self, request: Any) -> bytes | None:
        """The request header the intake read for ``request`` (once)."""
        with self._headers_lock:
            return self._headers.pop(id(request), None)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._headers_lock:
                self._headers.pop(id(request), None)
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        intake = getattr(self, "intake", None)  # absent when the bind failed
        if intake is not None:
            intake.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("HTTP: error while serving %s", client_address)


class HttpThread(threading.Thread):
    """Daemon thread serving ``GET /<key>`` from ``path`` (DIRAC: ``HttpThread(port, path)``).

    Keyword options (seproxy additions): ``register`` (defaults to the handler
    module's ``gRegister``), ``host`` (DIRAC binds all interfaces, ``""``),
    ``ssl_context`` for HTTPS, ``multi_use`` keys, ``max_connections``, the
    expiry purger ``purge_interval`` in seconds (0 disables it), ``header_timeout``
    (seconds for TLS handshake plus the whole request header), ``max_pending`` and
    ``max_pending_per_ip`` (connections waiting for their header).
    """

    def __init__(self, port: int, path: str, *, register: KeyLookup | None = None,
                 host: str = "", ssl_context: ssl.SSLContext | None = None,
                 multi_use: bool = False, max_connections: int = 64,
                 purge_interval: float = 30.0, start: bool = True,
                 header_timeout: float = 10.0, max_pending: int = 4096,
                 max_pending_per_ip: int = 256) -> None:
        super().__init__(name=f"seproxy-http-{port}", daemon=True)
        self.path = path
        if register is None:
            from seproxy.staging.cache import gRegister
            register = gRegister
        self.register = register
        handler = type("BoundHttpStorageAccessHandler", (HttpStorageAccessHandler,),
                       {"register": register, "basePath": path, "multi_use": multi_use})
        self.server = ThreadedSocketServer((host, port), handler, max_connections=max_connections,
                                           ssl_context=ssl_context, header_timeout=header_timeout,
                                           max_pending=max_pending,
                                           max_pending_per_ip=max_pending_per_ip)
        self.port = self.server.port
        self.scheme = "https" if ssl_context is not None else "http"
        if purge_interval > 0:
            register.start_purger(purge_interval)
        if start:
            self.start()

    def run(self) -> None:
        log.info("HTTP access on port %d serving %s", self.port, self.path)
        self.server.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.join(timeout=5)
