"""Per-service registry of live connections and per-method concurrency limits.

``ConnectionRegistry`` maps a transport id (``"<localIP>:<localPort>-><remoteIP>:<remotePort>"``)
to the transport, the caller's credential dict (shared with the handler, mutable) and
data associated by the framework (``connectData`` of message connections).
``MethodLimits`` holds one semaphore per ``<ActionType>/<name>``, sized from the
service option ``ThreadLimit/<ActionType>/<name>`` (default 15, PROTOCOL.md 5.2); none
when that limit is not below the service's worker count (it could never be reached).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from seproxy.rpc.connection import Connection


@dataclass
class ConnectionEntry:
    transport: Connection
    credentials: dict
    data: dict = field(default_factory=dict)


class ConnectionRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ConnectionEntry] = {}

    def add(self, transport: Connection, credentials: dict) -> str:
        trid = transport.id
        with self._lock:
            self._entries[trid] = ConnectionEntry(transport, credentials)
        return trid

    def get(self, trid: str) -> ConnectionEntry | None:
        with self._lock:
            return self._entries.get(trid)

    def remove(self, trid: str) -> ConnectionEntry | None:
        with self._lock:
            return self._entries.pop(trid, None)

    def close(self, trid: str) -> None:
        entry = self.remove(trid)
        if entry is not None:
            try:
                entry.transport.close()
            except Exception:  # noqa: BLE001 - closing a broken socket must not raise
                pass

    def close_all(self) -> None:
        with self._lock:
            trids = list(self._entries)
        for trid in trids:
            self.close(trid)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class MethodLimits:
    """Lazily created semaphores ``<ActionType>/<name>`` -> ThreadLimit.

    ``concurrency`` is the most threads that can ever run actions of the service (its
    workers): a limit at least that high can never make a caller wait, so such an
    action gets no semaphore at all (``semaphore()`` returns None) and its calls skip
    two pure-Python lock round trips.
    """

    DEFAULT = 15

    def __init__(self, limit_for: Callable[[str, str], int], concurrency: int | None = None) -> None:
        self._limit_for = limit_for
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._sems: dict[tuple[str, str], threading.BoundedSemaphore | None] = {}

    def semaphore(self, action_type: str, name: str) -> threading.BoundedSemaphore | None:
        key = (action_type, name)
        try:
            return self._sems[key]  # entries are never replaced: no lock needed to read one
        except KeyError:
            pass
        with self._lock:
            if key not in self._sems:
                limit = max(1, self._limit_for(action_type, name))
                unreachable = self._concurrency is not None and limit >= self._concurrency
                self._sems[key] = None if unreachable else threading.BoundedSemaphore(limit)
            return self._sems[key]
