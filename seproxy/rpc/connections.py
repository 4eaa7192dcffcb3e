"""Per-service registry of live connections and per-method concurrency limits.

``ConnectionRegistry`` maps a transport id (``"<localIP>:<localPort>-><remoteIP>:<remotePort>"``)
to the transport, the caller's credential dict (shared with the handler, mutable) and
data associated by the framework (``connectData`` of message connections).
``MethodLimits`` holds one semaphore per ``<ActionType>/<name>``, sized from the
service option ``ThreadLimit/<ActionType>/<name>`` (default 15, PROTOCOL.md 5.2).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class ConnectionEntry:
    transport: Any
    credentials: dict
    data: dict = field(default_factory=dict)


class ConnectionRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ConnectionEntry] = {}

    def add(self, transport: Any, credentials: dict) -> str:
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
    """Lazily created semaphores ``<ActionType>/<name>`` -> ThreadLimit."""

    DEFAULT = 15

    def __init__(self, limit_for: Callable[[str, str], int]) -> None:
        self._limit_for = limit_for
        self._lock = threading.Lock()
        self._sems: dict[tuple[str, str], threading.BoundedSemaphore] = {}

    def semaphore(self, action_type: str, name: str) -> threading.BoundedSemaphore:
        key = (action_type, name)
        sem = self._sems.get(key)  # entries are never replaced: no lock needed to read one
        if sem is not None:
            return sem
        with self._lock:
            sem = self._sems.get(key)
            if sem is None:
                sem = threading.BoundedSemaphore(max(1, self._limit_for(action_type, name)))
                self._sems[key] = sem
            return sem
