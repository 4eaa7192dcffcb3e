"""Per-service registry of live connections, per-method concurrency limits, per-address
and per-DN connection caps, and the slots for large frames being decoded.

``ConnectionRegistry`` maps a transport id (``"<localIP>:<localPort>-><remoteIP>:<remotePort>"``)
to the transport, the caller's credential dict (shared with the handler, mutable) and
data associated by the framework (``connectData`` of message connections).
``MethodLimits`` holds one semaphore per ``<ActionType>/<name>``, sized from the
service option ``ThreadLimit/<ActionType>/<name>`` (default 15, PROTOCOL.md 5.2); none
when that limit is not below the service's worker count (it could never be reached).
``ConnectionCaps`` counts the connections past their proposal (in a worker, a parked
reuse session or a message connection) per client address and per DN; ``FrameSlots``
bounds how many frames of at least ``LargeFrameSize`` bytes are read and decoded at once.
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
    #: called once when the entry leaves the registry (e.g. to release its caps)
    on_remove: Callable[[], None] | None = None


class ConnectionRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ConnectionEntry] = {}

    def add(self, transport: Connection, credentials: dict,
            on_remove: Callable[[], None] | None = None) -> str:
        trid = transport.id
        with self._lock:
            self._entries[trid] = ConnectionEntry(transport, credentials, on_remove=on_remove)
        return trid

    def get(self, trid: str) -> ConnectionEntry | None:
        with self._lock:
            return self._entries.get(trid)

    def remove(self, trid: str) -> ConnectionEntry | None:
        with self._lock:
            entry = self._entries.pop(trid, None)
        if entry is not None and entry.on_remove is not None:
            release, entry.on_remove = entry.on_remove, None
            release()
        return entry

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


class ConnectionCaps:
    """Connections per client address and per DN (0: no cap), counted from the proposal
    until the connection closes."""

    def __init__(self, per_ip: int, per_dn: int) -> None:
        self.per_ip = per_ip
        self.per_dn = per_dn
        self._lock = threading.Lock()
        self._ips: dict[str, int] = {}
        self._dns: dict[str, int] = {}

    def acquire(self, ip: str, dn: str) -> str | None:
        """Count one connection; None if it fits, else the option it exceeds (not counted)."""
        with self._lock:
            if self.per_ip and self._ips.get(ip, 0) >= self.per_ip:
                return f"MaxConnectionsPerIP={self.per_ip} from {ip}"
            if dn and self.per_dn and self._dns.get(dn, 0) >= self.per_dn:
                return f"MaxConnectionsPerDN={self.per_dn} for {dn}"
            self._ips[ip] = self._ips.get(ip, 0) + 1
            if dn:
                self._dns[dn] = self._dns.get(dn, 0) + 1
        return None

    def release(self, ip: str, dn: str) -> None:
        with self._lock:
            for table, key in ((self._ips, ip), (self._dns, dn)):
                if key and key in table:
                    table[key] -= 1
                    if table[key] <= 0:
                        del table[key]


class FrameSlots:
    """At most ``slots`` frames of ``size`` bytes or more read and decoded at once (a
    frame costs a few times its size in memory while it is decoded and served)."""

    def __init__(self, slots: int, size: int) -> None:
        self.size = size
        self.slots = max(1, slots)
        self._slots = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self.in_use = 0
        self.peak = 0
        self.waiting = 0

    def acquire(self, timeout: float | None) -> bool:
        with self._lock:
            self.waiting += 1
        try:
            got = self._slots.acquire(timeout=timeout)
        finally:
            with self._lock:
                self.waiting -= 1
        if got:
            with self._lock:
                self.in_use += 1
                self.peak = max(self.peak, self.in_use)
        return got

    def release(self) -> None:
        with self._lock:
            self.in_use -= 1
        self._slots.release()
