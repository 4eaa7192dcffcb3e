"""A bounded in-memory LRU of callers' proxies, each kept until a margin before it expires.

The credential sources that hold callers' proxies (the ProxyManager's downloads, the
proxies clients delegate) keep them here: in memory only (never on disk, never in
``os.environ``), under a key that says exactly whose a proxy is. :meth:`ProxyCache.get`
never hands out a proxy with ``margin`` seconds or less left (it drops it instead); the
least recently used entry goes first when ``size`` is reached.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ProxyCache(Generic[K, V]):
    """Proxies (``V``) by owner (``K``), with their end of validity (``time.time()`` scale)."""

    def __init__(self, size: int, margin: float, clock: Callable[[], float] = time.time) -> None:
        self.size = max(1, int(size))
        self.margin = float(margin)
        self._clock = clock
        self._entries: collections.OrderedDict[K, tuple[float, V]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The proxy kept for ``key`` while it has more than the margin left, else None."""
        with self._lock:
            return self._live(key)

    def add(self, key: K, value: V, not_after: float) -> V:
        """Keep ``value`` for ``key`` until ``not_after`` (less the margin) and return it; if a
        usable proxy of ``key`` is kept already (another call added it meanwhile), that one
        stays and is returned instead."""
        with self._lock:
            kept = self._live(key)
            if kept is not None:
                return kept
            self._entries[key] = (not_after, value)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            return value

    def forget(self, match: Callable[[K], bool] | None = None) -> None:
        """Drop the entries whose key ``match`` accepts (all without ``match``)."""
        with self._lock:
            for key in [k for k in self._entries if match is None or match(k)]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] - self._clock() <= self.margin:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]


__all__ = ["ProxyCache"]
