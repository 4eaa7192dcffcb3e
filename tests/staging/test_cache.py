"""ExpiringRegister (DIRAC DictCache semantics + leases + purger) and CacheArea."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from seproxy.staging.cache import CacheArea, CacheFullError, ExpiringRegister, purgeCacheDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_dictcache_semantics():
    deleted = []
    clock = Clock()
    reg = ExpiringRegister(deleted.append, clock=clock)
    reg.add("k", 10, "v")
    assert reg.exists("k") and reg.get("k") == "v"
    assert not reg.exists("k", validSeconds=20)  # expires within 20 s
    assert reg.get("k", validSeconds=20) is None
    assert reg.getKeys() == ["k"] and reg.getDict() == {"k": "v"}
    clock.now += 11
    assert not reg.exists("k")
    assert deleted == ["v"]  # expired on lookup: deleted like DictCache
    reg.add("a", 5, "va")
    reg.add("b", 50, "vb")
    clock.now += 6
    assert reg.purgeExpired() == 1
    assert deleted == ["v", "va"]
    reg.delete("b")
    assert deleted == ["v", "va", "vb"]
    reg.add("c", 5, "vc")
    reg.purgeAll()
    assert deleted[-1] == "vc" and len(reg) == 0


def test_replacing_a_key_deletes_the_old_value():
    deleted = []
    reg = ExpiringRegister(deleted.append)
    reg.add("k", 10, "old")
    reg.add("k", 10, "new")
    assert deleted == ["old"] and reg.get("k") == "new"


def test_lease_defers_deletion_until_release():
    deleted = []
    clock = Clock()
    reg = ExpiringRegister(deleted.append, clock=clock)
    reg.add("k", 10, "v")
    lease = reg.acquire("k")
    assert lease.value == "v"
    clock.now += 20
    assert reg.purgeExpired() == 1
    assert deleted == []  # in use: not deleted yet
    assert reg.acquire("k") is None  # but no new user gets it
    reg.release(lease)
    assert deleted == ["v"]


def test_consuming_release_removes_key_once():
    deleted = []
    reg = ExpiringRegister(deleted.append)
    reg.add("k", 10, "v")
    first, second = reg.acquire("k"), reg.acquire("k")
    reg.release(first, consume=True)
    assert not reg.exists("k") and deleted == []  # second user still reading
    reg.release(second)
    reg.release(second)  # double release is harmless
    assert deleted == ["v"]


def test_background_purger_deletes_without_requests():
    removed = threading.Event()
    reg = ExpiringRegister(lambda value: removed.set())
    reg.add("k", 0.05, "v")
    reg.start_purger(0.02)
    try:
        assert removed.wait(10)
    finally:
        reg.stop_purger()


def test_purge_cache_directory(tmp_path):
    target = tmp_path / "key" / "sub"
    target.mkdir(parents=True)
    (target / "f").write_text("x")
    purgeCacheDirectory(tmp_path / "key")
    assert not (tmp_path / "key").exists()
    purgeCacheDirectory(tmp_path / "missing")  # no error


def test_startup_cleanup_removes_partials_and_key_dirs(tmp_path):
    area = CacheArea(tmp_path / "base")
    (area.tmp / "upload.part").write_bytes(b"partial")
    (area.http_cache / "oldkey").mkdir()
    (area.http_cache / "oldkey" / "f").write_bytes(b"x")
    staged = area.ns_root / "someone" / "getFile"
    staged.mkdir(parents=True)
    (staged / "keep").write_bytes(b"k")
    assert CacheArea(tmp_path / "base").clean_startup() == {"tmp": 1, "http": 1}
    assert list(area.tmp.iterdir()) == [] and list(area.http_cache.iterdir()) == []
    assert (staged / "keep").exists()


def _file(path: Path, size: int, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * size)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def test_watermarks_evict_least_recently_used_not_in_use(tmp_path):
    area = CacheArea(tmp_path, high_watermark=1000, low_watermark=500)
    old = _file(area.ns_root / "a" / "getFile" / "old", 400, 300)
    busy = _file(area.ns_root / "a" / "getFile" / "busy", 400, 200)
    new = _file(area.ns_root / "b" / "getFile" / "new", 100, 10)
    assert area.make_room(50) == 0  # 900 + 50 fits under 1000
    with area.in_use(busy):
        evicted = area.make_room(300)  # 1200 > 1000: evict down to 500 - 300
    assert evicted == 400 + 100
    assert not old.exists() and busy.exists() and not new.exists()


def test_cache_full_when_everything_is_in_use(tmp_path):
    area = CacheArea(tmp_path, high_watermark=1000)
    busy = _file(area.ns_root / "a" / "putFile" / "busy", 900, 5)
    with area.in_use(busy), pytest.raises(CacheFullError):
        area.make_room(200)
    assert busy.exists()


def test_instances_sharing_a_base_path_keep_their_own_partials(tmp_path):
    first = CacheArea(tmp_path, instance="node1")
    second = CacheArea(tmp_path, instance="node2")
    (first.tmp / "a.part").write_bytes(b"1")
    (second.tmp / "b.part").write_bytes(b"2")
    (second.http_cache / "key").mkdir()
    assert CacheArea(tmp_path, instance="node1").clean_startup() == {"tmp": 1, "http": 0}
    assert (second.tmp / "b.part").exists() and (second.http_cache / "key").exists()


def test_purge_stale_removes_only_old_unused_staged_copies(tmp_path):
    cache = CacheArea(tmp_path, instance="n")
    ns = cache.ns_root / "abc"
    for area in ("getFile", "putFile"):
        (ns / area).mkdir(parents=True)
    old, fresh, busy = ns / "getFile" / "old", ns / "getFile" / "fresh", ns / "putFile" / "busy"
    partial = cache.tmp / "upload.part"
    for path in (old, fresh, busy, partial):
        path.write_bytes(b"x")
    past = time.time() - 7200
    for path in (old, busy, partial):
        os.utime(path, (past, past))
    with cache.in_use(busy):
        assert cache.purge_stale(3600) == 1
    assert not old.exists() and fresh.exists() and busy.exists() and partial.exists()
