"""Plain TCP transport for ``dip://`` (no TLS, empty credential dict).

Writes use ``sendmsg`` with the frame's parts as a scatter list, so a frame
goes out in one system call without joining its parts.
"""

from __future__ import annotations

import socket

from seproxy.errors import PeerClosed, TransportError
from seproxy.rpc.transport.base import (
    DEFAULT_CONNECTION_TIMEOUT,
    WANT_READ,
    WANT_WRITE,
    Listener,
    Transport,
    connected_socket,
    listening_socket,
)

#: At most this many buffers per sendmsg call (IOV_MAX is 1024 on Linux).
_MAX_IOV = 512


class PlainTransport(Transport):
    """A ``dip`` connection."""

    def _io(self, call, view: memoryview, want: int, prefix: str) -> int:
        try:
            return call(view)
        except (BlockingIOError, InterruptedError):
            return want
        except OSError as exc:
            raise TransportError(f"{prefix}: {exc}") from exc

    def _recv_into(self, view: memoryview) -> int:
        return self._io(self._sock.recv_into, view, WANT_READ, self._READ_ERROR)

    def _send(self, view: memoryview) -> int:
        return self._io(self._sock.send, view, WANT_WRITE, self._WRITE_ERROR)

    def _send_views(self, views: list[memoryview]) -> None:
        self._check_sendable()
        deadline = self._deadline()
        while views:
            try:
                sent = self._sock.sendmsg(views[:_MAX_IOV])
            except (BlockingIOError, InterruptedError):
                if not self._wait_fd(WANT_WRITE, deadline, "write"):
                    raise TransportError("Socket write timeout exceeded") from None
                continue
            except OSError as exc:
                raise TransportError(f"{self._WRITE_ERROR}: {exc}") from exc
            if sent <= 0:
                raise PeerClosed("Connection closed by peer")
            deadline = self._deadline()
            while sent:
                first = views[0]
                if sent >= first.nbytes:
                    sent -= first.nbytes
                    views.pop(0)
                else:
                    views[0] = first[sent:]
                    sent = 0

    def _shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class PlainListener(Listener):
    def _wrap(self, sock: socket.socket) -> Transport:
        return PlainTransport(sock, server_side=True)


def listen(host: str, port: int, *, backlog: int = 128) -> PlainListener:
    return PlainListener(listening_socket(host, port, backlog))


def connect(host: str, port: int, *, timeout: float = DEFAULT_CONNECTION_TIMEOUT,
            keepalive_lapse: float = 0.0) -> PlainTransport:
    sock = connected_socket(host, port, timeout)
    return PlainTransport(sock, server_side=False, keepalive_lapse=keepalive_lapse)
