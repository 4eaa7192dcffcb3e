"""The StorageElementProxy's HTTP download server (DIRAC API names).

``ThreadedSocketServer(ThreadingMixIn, TCPServer)`` runs one daemon thread per
connection, bounded: at most ``max_connections`` requests are served at once and a
connection beyond that gets ``503`` at once. With an ``ssl_context`` the TLS
handshake happens in the connection's thread (the accept loop never blocks on a
slow client). ``HttpThread(port, path)`` is DIRAC's daemon thread serving the key
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
from seproxy.staging.keyregister import KeyLookup

log = logging.getLogger(__name__)

_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Content-Length: 24\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
         b"Too many connections...\n")


class ThreadedSocketServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A threading TCP server with a connection bound and optional TLS (DIRAC name)."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, server_address: tuple[str, int], RequestHandlerClass: Any,  # noqa: N803
                 bind_and_activate: bool = True, *, max_connections: int = 64,
                 ssl_context: ssl.SSLContext | None = None, handshake_timeout: float = 10.0) -> None:
        if ":" in server_address[0]:
            self.address_family = socket.AF_INET6
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(server_address, RequestHandlerClass, bind_and_activate)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("HTTP: refusing %s, too many connections", client_address)
            try:
                if self.ssl_context is None:
                    request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.handshake_timeout)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.info("HTTPS handshake with %s failed: %s", client_address, exc)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("HTTP: error while serving %s", client_address)


class HttpThread(threading.Thread):
    """Daemon thread serving ``GET /<key>`` from ``path`` (DIRAC: ``HttpThread(port, path)``).

    Keyword options (seproxy additions): ``register`` (defaults to the handler
    module's ``gRegister``), ``host`` (DIRAC binds all interfaces, ``""``),
    ``ssl_context`` for HTTPS, ``multi_use`` keys, ``max_connections`` and the
    expiry purger ``purge_interval`` in seconds (0 disables it).
    """

    def __init__(self, port: int, path: str, *, register: KeyLookup | None = None,
                 host: str = "", ssl_context: ssl.SSLContext | None = None,
                 multi_use: bool = False, max_connections: int = 64,
                 purge_interval: float = 30.0, start: bool = True) -> None:
        super().__init__(name=f"seproxy-http-{port}", daemon=True)
        self.path = path
        if register is None:
            from seproxy.staging.cache import gRegister
            register = gRegister
        self.register = register
        handler = type("BoundHttpStorageAccessHandler", (HttpStorageAccessHandler,),
                       {"register": register, "basePath": path, "multi_use": multi_use})
        self.server = ThreadedSocketServer((host, port), handler, max_connections=max_connections,
                                           ssl_context=ssl_context)
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
