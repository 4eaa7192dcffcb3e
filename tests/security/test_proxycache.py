"""ProxyCache: bounded LRU, entries dropped at the margin, a kept live entry wins."""

from __future__ import annotations

from seproxy.security.proxycache import ProxyCache


def test_kept_until_the_margin_then_dropped():
    now = [1000.0]
    cache: ProxyCache[str, bytes] = ProxyCache(10, 100, clock=lambda: now[0])
    assert cache.get("a") is None
    assert cache.add("a", b"A", not_after=1200.0) == b"A"
    assert cache.get("a") == b"A"
    now[0] = 1100.0  # exactly the margin left: no longer handed out
    assert cache.get("a") is None and len(cache) == 0


def test_a_live_entry_stays_and_an_expiring_one_is_replaced():
    now = [0.0]
    cache: ProxyCache[str, bytes] = ProxyCache(10, 100, clock=lambda: now[0])
    cache.add("a", b"first", not_after=500.0)
    assert cache.add("a", b"second", not_after=900.0) == b"first"  # another call's, still good
    now[0] = 450.0
    assert cache.add("a", b"third", not_after=900.0) == b"third"
    assert cache.get("a") == b"third"


def test_least_recently_used_goes_first_and_forget():
    cache: ProxyCache[tuple[str, str], int] = ProxyCache(2, 0, clock=lambda: 0.0)
    cache.add(("dn1", "g"), 1, 10.0)
    cache.add(("dn2", "g"), 2, 10.0)
    assert cache.get(("dn1", "g")) == 1  # dn2 is now the least recently used
    cache.add(("dn3", "g"), 3, 10.0)
    assert cache.get(("dn2", "g")) is None and len(cache) == 2
    cache.forget(lambda key: key[0] == "dn1")
    assert cache.get(("dn1", "g")) is None and cache.get(("dn3", "g")) == 3
    cache.forget()
    assert len(cache) == 0
