"""Whole-request deadlines for connections served by workers.

A transport's own timeout bounds each *wait* for the peer; a client that sends one byte
just before every timeout would hold a worker for ever. :class:`Watchdog` bounds the
whole exchange instead: :meth:`Watchdog.watch` arms a deadline for a transport and, if
the deadline passes before the watch is cancelled, shuts the socket down
(``shutdown(SHUT_RDWR)``: the worker blocked on it wakes up with "Peer closed
connection" and closes it as usual; the descriptor itself is only ever closed by its
owner, so no other connection can receive a stray close).

``progress=True`` makes it a *window* deadline: when it passes, the watch is renewed as
long as the transport received at least one more frame since it was armed (a transfer:
every chunk window must arrive within the deadline, however long the whole transfer).

One daemon thread per watchdog, a heap of deadlines: cheap enough to arm per request.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import threading
import time
from typing import Any

log = logging.getLogger("seproxy.rpc.server.watchdog")


class Watch:
    """One armed deadline; :meth:`cancel` (or leaving the ``with`` block) disarms it."""

    __slots__ = ("deadline", "seconds", "transport", "progress", "frames", "cancelled", "fired", "what")

    def __init__(self, transport: Any, seconds: float, progress: bool, what: str) -> None:
        self.transport = transport
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.progress = progress
        self.frames = getattr(transport, "frames_received", 0)
        self.cancelled = False
        self.fired = False
        self.what = what

    def cancel(self) -> None:
        self.cancelled = True

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Watchdog:
    def __init__(self, name: str = "watchdog") -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"seproxy-{name}", daemon=True)
        self._thread.start()
        self.fired = 0

    def watch(self, transport: Any, seconds: float | None, *, progress: bool = False,
              what: str = "request") -> Watch:
        """Arm a deadline ``seconds`` from now (None or <= 0: a watch that never fires)."""
        watch = Watch(transport, seconds or 0.0, progress, what)
        if not seconds or seconds <= 0:
            watch.cancelled = True
            return watch
        with self._cond:
            heapq.heappush(self._heap, (watch.deadline, next(self._counter), watch))
            self._cond.notify()
        return watch

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    # drop cancelled watches at the top: the heap stays small
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stopped:
                    return
                _, _, watch = heapq.heappop(self._heap)
                frames = getattr(watch.transport, "frames_received", 0)
                if watch.progress and frames != watch.frames:
                    watch.frames = frames  # a window arrived in time: the next one gets as long
                    watch.deadline = time.monotonic() + watch.seconds
                    heapq.heappush(self._heap, (watch.deadline, next(self._counter), watch))
                    continue
            self._fire(watch)

    def _fire(self, watch: Watch) -> None:
        if watch.cancelled:
            return
        watch.fired = True
        self.fired += 1
        transport = watch.transport
        log.info("Closing %s: the %s did not complete within %g s", getattr(transport, "id", transport),
                 watch.what, watch.seconds)
        with contextlib.suppress(Exception):
            transport.interrupt()


__all__ = ["Watch", "Watchdog"]
