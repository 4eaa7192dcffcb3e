"""The intake stage of a service: from ``accept`` to a whole proposal, without a worker.

One thread runs a :mod:`selectors` loop over every connection that is still doing its
TLS handshake (non-blocking, ``handshake_step``) or sending its proposal frame
(``receive_frame_nowait``). A connection leaves the intake

* to the worker pool (the ``ready(transport, payload)`` callback) once its whole
  proposal frame has arrived;
* through ``bad(transport, error)`` when the proposal frame is malformed or too large
  (the service answers DIRAC's "Invalid action proposal" and closes);
* closed, when its deadline passes: one deadline for handshake *and* proposal together,
  counted from the accept (a client dripping a byte at a time gets no more time than a
  silent one), drawn between half and all of ``deadline`` so that a burst of idle
  connections is not closed - and re-opened - in one burst again; or on any transport
  error.

Bounded: at most ``max_pending`` connections in total and ``max_per_ip`` per client
address wait here. A new connection beyond ``max_per_ip`` is closed at once (as DIRAC
does when it throttles); one beyond ``max_pending`` takes the place of the oldest
waiting connection of the address with the most waiting, if that address has more than
the newcomer's (else it is closed at once): a flood from many addresses cannot lock out
a client that opens one connection. So TCP connections that never start TLS, idle TLS connections and
slow proposals cost a file descriptor each for at most the deadline, never a worker.

Fair: each round of the loop serves the ready connections of the addresses with the
fewest connections waiting first, and at most ``BATCH`` of them (handshake steps cost
CPU): a burst of handshakes from a few busy addresses does not queue ahead of a client
that has one connection here.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import os
import random
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from seproxy import metrics
from seproxy.errors import ProtocolError, SeproxyError

log = logging.getLogger("seproxy.rpc.server.intake")

#: Connections stepped per round of the loop (then the selector is asked again).
BATCH = 16
#: Backend "would block" codes (seproxy.rpc.transport.base.WANT_READ / WANT_WRITE).
_WANT_READ, _WANT_WRITE = -1, -2


class _Pending:
    __slots__ = ("transport", "ip", "deadline", "handshaking", "done", "events")

    def __init__(self, transport: Any, ip: str, deadline: float) -> None:
        self.transport = transport
        self.ip = ip
        self.deadline = deadline
        self.handshaking = hasattr(transport, "handshake_step")
        self.done = False
        self.events = selectors.EVENT_READ


class Intake:
    def __init__(self, ready: Callable[[Any, bytes], None], bad: Callable[[Any, Exception], None], *,
                 deadline: float = 10.0, max_pending: int = 1024, max_per_ip: int = 256,
                 max_proposal: int = 1 << 20, name: str = "service") -> None:
        self._ready = ready
        self._bad = bad
        self.deadline = deadline
        self.max_pending = max_pending
        self.max_per_ip = max_per_ip
        self.max_proposal = max_proposal
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._incoming: collections.deque[_Pending] = collections.deque()
        self._per_ip: collections.Counter[str] = collections.Counter()
        self._count = 0
        self._heap: list[tuple[float, int, _Pending]] = []
        self._seq = itertools.count()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopped = False
        self.stats = {"refused": 0, "timed_out": 0, "failed": 0, "handed": 0, "evicted": 0}
        self._evictions = 0  # evictions asked for by add() (the total cap was reached)
        self._by_ip: dict[str, collections.deque[_Pending]] = {}  # oldest first
        self._thread = threading.Thread(target=self._loop, name=f"{name}:intake", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Connections waiting for their handshake or proposal."""
        return self._count

    def add(self, transport: Any) -> bool:
        """Take an accepted connection; False (and closed) when a limit is reached."""
        ip = str(transport.remote_address[0])
        with self._lock:
            full = self._count >= self.max_pending
            if (self._stopped or self._per_ip[ip] >= self.max_per_ip
                    or (full and max(self._per_ip.values(), default=0) <= self._per_ip[ip] + 1)):
                self.stats["refused"] += 1
                refused = True
            else:
                if full:  # the intake thread evicts one of the heaviest address's connections
                    self._evictions += 1
                self._count += 1
                self._per_ip[ip] += 1
                # the deadline is drawn between half and all of it: connections opened in
                # one burst do not all expire (and come back for new handshakes) at once
                deadline = self.deadline * (0.5 + 0.5 * random.random())  # not a secret
                self._incoming.append(_Pending(transport, ip, time.monotonic() + deadline))
                refused = False
        if refused:
            log.warning("Rejecting client %s due to throttling: %d connections waiting for their "
                        "proposal (%d from this address)", transport.id, self._count, self._per_ip[ip])
            _close(transport)
            return False
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        return True

    def close(self) -> None:
        with self._lock:
            self._stopped = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for _, _, pending in self._heap:
            if not pending.done:
                self._finish(pending)
                _close(pending.transport)
        while self._incoming:
            _close(self._incoming.popleft().transport)
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self) -> None:
        fresh: list[_Pending] = []  # registered, not stepped yet (the ClientHello may be there)
        while not self._stopped:
            while self._heap and self._heap[0][2].done:
                heapq.heappop(self._heap)
            timeout = None
            if fresh:
                timeout = 0.0
            elif self._heap:
                timeout = max(0.0, self._heap[0][0] - time.monotonic())
            try:
                events = self._selector.select(timeout)
            except (OSError, ValueError):  # pragma: no cover - closed at stop
                return
            ready = []
            for key, _mask in events:
                if key.data is None:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    fresh.extend(self._take_incoming())
                    self._evict()
                elif not key.data.done:
                    ready.append(key.data)
            ready.extend(p for p in fresh if p not in ready)
            # lightest addresses first, a bounded batch: the rest stays ready (level-
            # triggered selector) or fresh, for the next round
            ready.sort(key=lambda p: self._per_ip.get(p.ip, 0))
            batch = ready[:BATCH]
            for pending in batch:
                if not pending.done:
                    self._step(pending)
            stepped = set(map(id, batch))
            fresh = [p for p in fresh if id(p) not in stepped and not p.done]
            self._expire()

    def _take_incoming(self) -> list[_Pending]:
        taken: list[_Pending] = []
        while True:
            with self._lock:
                if not self._incoming:
                    return taken
                pending = self._incoming.popleft()
            try:
                self._selector.register(pending.transport.fileno(), selectors.EVENT_READ, pending)
            except (OSError, ValueError) as exc:
                log.info("Cannot watch %s: %s", pending.transport.id, exc)
                self._finish(pending)
                _close(pending.transport)
                continue
            heapq.heappush(self._heap, (pending.deadline, next(self._seq), pending))
            self._by_ip.setdefault(pending.ip, collections.deque()).append(pending)
            taken.append(pending)

    def _evict(self) -> None:
        """Close the oldest waiting connection of the busiest address, once per request."""
        while True:
            with self._lock:
                if self._evictions <= 0:
                    return
                self._evictions -= 1
                ip = max(self._per_ip, key=self._per_ip.__getitem__, default=None)
            queue = self._by_ip.get(ip) if ip is not None else None
            while queue and queue[0].done:
                queue.popleft()
            if not queue:
                continue
            victim = queue.popleft()
            self._finish(victim)
            self.stats["evicted"] += 1
            log.info("Closing %s: too many connections waiting (MaxPendingConnections), most of "
                     "them from %s", victim.transport.id, ip)
            _close(victim.transport)

    def _step(self, pending: _Pending) -> None:
        transport = pending.transport
        try:
            if pending.handshaking:
                try:
                    want = transport.handshake_step()
                except Exception as exc:
                    metrics.handshake(exc)
                    raise
                if want != 0:
                    self._want(pending, selectors.EVENT_WRITE if want == _WANT_WRITE
                               else selectors.EVENT_READ)
                    return
                metrics.handshake(None)
                pending.handshaking = False
                self._want(pending, selectors.EVENT_READ)
            payload = transport.receive_frame_nowait(self.max_proposal)
        except ProtocolError as exc:
            self._finish(pending)
            self.stats["failed"] += 1
            log.info("Invalid action proposal from %s: %s", transport.id, exc)
            self._bad(transport, exc)
            return
        except (SeproxyError, OSError, ValueError) as exc:
            self._finish(pending)
            self.stats["failed"] += 1
            log.info("Connection %s failed before its proposal: %s", transport.id, exc)
            _drain(transport)  # what the peer sent is read: the close is no reset
            _close(transport)
            return
        if payload is None:
            return
        self._finish(pending)
        self.stats["handed"] += 1
        try:
            self._ready(transport, payload)
        except Exception:  # the intake must survive a failing hand-over
            log.exception("Hand-over of %s failed", transport.id)
            _close(transport)

    def _want(self, pending: _Pending, events: int) -> None:
        if pending.events != events:
            pending.events = events
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.modify(pending.transport.fileno(), events, pending)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
            _, _, pending = heapq.heappop(self._heap)
            if pending.done:
                continue
            self._finish(pending)
            self.stats["timed_out"] += 1
            what = "TLS handshake" if pending.handshaking else "proposal"
            if pending.handshaking:
                metrics.handshake(TimeoutError(f"TLS handshake timed out after {self.deadline:g} s"))
            log.info("Closing %s: no complete %s within %g s", pending.transport.id, what, self.deadline)
            _close(pending.transport)

    def _finish(self, pending: _Pending) -> None:
        """Take ``pending`` out of the intake (its transport is not closed here)."""
        if pending.done:
            return
        pending.done = True
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._selector.unregister(pending.transport.fileno())
        with self._lock:
            self._count -= 1
            self._per_ip[pending.ip] -= 1
            if self._per_ip[pending.ip] <= 0:
                del self._per_ip[pending.ip]
                self._by_ip.pop(pending.ip, None)


def _drain(transport: Any) -> None:
    """Read away (without waiting) what the peer has sent on the raw socket."""
    with contextlib.suppress(Exception):
        sock = socket.socket(fileno=os.dup(transport.fileno()))
        try:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                while sock.recv(65536):
                    pass
        finally:
            sock.close()


def _close(transport: Any) -> None:
    with contextlib.suppress(Exception):
        transport.close()


__all__ = ["Intake"]
