"""The HTTP server's intake: accepted connections wait here, not in a worker thread, until
their whole request header has arrived.

One thread runs a :mod:`selectors` loop over every connection that is still handshaking
(HTTPS, non-blocking) or sending its request header. A connection leaves the intake

* to a worker (:meth:`Intake.__init__`'s ``ready`` callback) with the header bytes read so
  far, once ``\\r\\n\\r\\n`` has arrived;
* closed, when the header deadline passes (one deadline for handshake plus header, counted
  from the accept: a client dripping a byte at a time gets no more time than a silent one),
  when the header grows beyond ``max_header`` bytes, or on any error.

Bounded: at most ``max_pending`` connections wait in total and ``max_per_ip`` per client
address; beyond that a new connection is closed at once. So slow or silent clients
(slow-loris) cost a file descriptor each for at most the deadline, never a worker.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import logging
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_END = b"\r\n\r\n"


@dataclass(order=True)
class _Pending:
    deadline: float
    seq: int
    sock: Any = field(compare=False)
    address: Any = field(compare=False)
    handshaking: bool = field(default=False, compare=False)
    data: bytearray = field(default_factory=bytearray, compare=False)
    done: bool = field(default=False, compare=False)


class Intake:
    """Reads request headers of accepted sockets without a thread per connection."""

    def __init__(self, ready: Callable[[Any, Any, bytes], None], *,
                 ssl_context: ssl.SSLContext | None = None, header_timeout: float = 10.0,
                 max_header: int = 65536, max_pending: int = 4096, max_per_ip: int = 256) -> None:
        self._ready = ready
        self._ssl = ssl_context
        self.header_timeout = header_timeout
        self.max_header = max_header
        self.max_pending = max_pending
        self.max_per_ip = max_per_ip
        self._selector = selectors.DefaultSelector()
        self._incoming: collections.deque[tuple[Any, Any]] = collections.deque()
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._pending: dict[int, _Pending] = {}
        self._deadlines: list[_Pending] = []
        self._seq = 0
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = False
        self.stats = {"refused": 0, "timed_out": 0, "too_large": 0, "handed": 0}
        self._thread = threading.Thread(target=self._loop, name="seproxy-http-intake", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._incoming)

    def add(self, sock: socket.socket, address: Any) -> None:
        """Take an accepted socket (from the accept thread)."""
        ip = str(address[0]) if isinstance(address, tuple) else str(address)
        with self._lock:
            if (len(self._pending) + len(self._incoming) >= self.max_pending
                    or self._per_ip[ip] >= self.max_per_ip):
                self.stats["refused"] += 1
                refuse = True
            else:
                self._per_ip[ip] += 1
                self._incoming.append((sock, address))
                refuse = False
        if refuse:
            log.warning("HTTP: refusing %s, too many connections waiting for their request", ip)
            _close(sock)
            return
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for pending in list(self._pending.values()):
            self._drop(pending)
        while self._incoming:
            _close(self._incoming.popleft()[0])
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop:
            timeout = None
            if self._deadlines:
                timeout = max(0.0, self._deadlines[0].deadline - time.monotonic())
            try:
                events = self._selector.select(timeout)
            except OSError:  # pragma: no cover - closed under our feet at stop
                return
            for key, _mask in events:
                if key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    self._take_incoming()
                else:
                    self._step(key.data)
            self._expire()

    def _take_incoming(self) -> None:
        while True:
            with self._lock:
                if not self._incoming:
                    return
                sock, address = self._incoming.popleft()
            self._seq += 1
            pending = _Pending(time.monotonic() + self.header_timeout, self._seq, sock, address)
            try:
                sock.setblocking(False)
                if self._ssl is not None:
                    pending.sock = self._ssl.wrap_socket(sock, server_side=True,
                                                         do_handshake_on_connect=False)
                    pending.handshaking = True
                self._selector.register(pending.sock, selectors.EVENT_READ, pending)
            except (OSError, ValueError) as exc:
                log.info("HTTP: cannot take the connection of %s: %s", address, exc)
                self._forget(pending)
                _close(pending.sock)
                continue
            with self._lock:
                self._pending[id(pending)] = pending
            heapq.heappush(self._deadlines, pending)
            self._step(pending)  # data may have arrived with the connection

    def _step(self, pending: _Pending) -> None:
        sock = pending.sock
        try:
            if pending.handshaking:
                try:
                    sock.do_handshake()
                except ssl.SSLWantReadError:
                    self._want(pending, selectors.EVENT_READ)
                    return
                except ssl.SSLWantWriteError:
                    self._want(pending, selectors.EVENT_WRITE)
                    return
                pending.handshaking = False
                self._want(pending, selectors.EVENT_READ)
            while True:
                try:
                    chunk = sock.recv(self.max_header + 1 - len(pending.data))
                except (BlockingIOError, ssl.SSLWantReadError):
                    return
                except ssl.SSLWantWriteError:
                    self._want(pending, selectors.EVENT_WRITE)
                    return
                if not chunk:
                    self._drop(pending)
                    return
                start = max(0, len(pending.data) - 3)
                pending.data += chunk
                if pending.data.find(_END, start) >= 0:
                    self._hand_over(pending)
                    return
                if len(pending.data) > self.max_header:
                    self.stats["too_large"] += 1
                    self._drop(pending, b"HTTP/1.0 431 Request Header Fields Too Large\r\n"
                                        b"Content-Length: 0\r\nConnection: close\r\n\r\n")
                    return
        except (OSError, ValueError) as exc:
            log.info("HTTP: connection of %s failed before its request: %s", pending.address, exc)
            self._drop(pending)

    def _want(self, pending: _Pending, events: int) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.modify(pending.sock, events, pending)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._deadlines and (self._deadlines[0].done or self._deadlines[0].deadline <= now):
            pending = heapq.heappop(self._deadlines)
            if pending.done:
                continue
            self.stats["timed_out"] += 1
            log.info("HTTP: %s sent no complete request within %s s, closing",
                     pending.address, self.header_timeout)
            self._drop(pending, b"HTTP/1.0 408 Request Timeout\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")

    def _detach(self, pending: _Pending) -> None:
        pending.done = True
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(pending.sock)
        with self._lock:
            self._pending.pop(id(pending), None)
        self._forget(pending)

    def _forget(self, pending: _Pending) -> None:
        ip = str(pending.address[0]) if isinstance(pending.address, tuple) else str(pending.address)
        with self._lock:
            self._per_ip[ip] -= 1
            if self._per_ip[ip] <= 0:
                del self._per_ip[ip]

    def _drop(self, pending: _Pending, answer: bytes = b"") -> None:
        if pending.done:
            return
        self._detach(pending)
        if answer and not pending.handshaking:
            with contextlib.suppress(OSError, ValueError):
                pending.sock.send(answer)
        _close(pending.sock)

    def _hand_over(self, pending: _Pending) -> None:
        self._detach(pending)
        self.stats["handed"] += 1
        try:
            pending.sock.setblocking(True)
            self._ready(pending.sock, pending.address, bytes(pending.data))
        except Exception:  # a failing hand-over must not stop the intake
            log.exception("HTTP: hand-over of %s failed", pending.address)
            _close(pending.sock)


def _close(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.close()


__all__ = ["Intake"]
