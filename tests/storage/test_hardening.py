"""File storage element hardening (issue 17): no symlink followed out of the SE by any
method, orphaned upload temporaries neither counted nor kept, and directory creation that
tolerates concurrent creators."""

from __future__ import annotations

import os
import threading
import time
import zlib
from pathlib import Path

import pytest

from seproxy import localfs
from seproxy.localfs import temp_name_for
from tests.storage.plugins.test_file import make_se

SECRET = b"root:$6$not-for-you:19000:0:99999:7:::\n".ljust(1234567, b"#")
SECRET_MARKS = ("1234567", "3703701", localfs.adler32_hex(zlib.adler32(SECRET)))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    (path / "dirac" / "d").mkdir(parents=True)
    (path / "dirac" / "d" / "real.dat").write_bytes(b"12345")
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret_dir = tmp_path / "etc"
    secret_dir.mkdir()
    (secret_dir / "shadow").write_bytes(SECRET)
    (secret_dir / "more").write_bytes(SECRET * 3)
    return secret_dir


def plant_links(root: Path, outside: Path) -> None:
    d = root / "dirac" / "d"
    (d / "shadow-link").symlink_to(outside / "shadow")
    (d / "etc-link").symlink_to(outside)
    (d / "inner-link").symlink_to(d / "real.dat")  # stays inside: harmless


def leaked(value: object) -> bool:
    """Sizes or the checksum of the files outside in a result."""
    return any(mark in repr(value) for mark in SECRET_MARKS)


def test_list_directory_does_not_follow_links_out(root, outside):
    plant_links(root, outside)
    se = make_se(root)
    res = se.listDirectory("/dirac/d")
    assert res["OK"], res
    listing = res["Value"]["Successful"].get("/dirac/d", {})
    files, dirs = listing.get("Files", {}), listing.get("SubDirs", {})
    assert "/dirac/d/real.dat" in files and files["/dirac/d/real.dat"]["Size"] == 5
    for name in ("shadow-link", "etc-link"):
        assert f"/dirac/d/{name}" not in files and f"/dirac/d/{name}" not in dirs
    for meta in [*files.values(), *dirs.values()]:
        assert meta.get("Size") not in (len(SECRET), 3 * len(SECRET)), listing


def test_directory_size_does_not_follow_links_out(root, outside):
    plant_links(root, outside)
    se = make_se(root)
    res = se.getDirectorySize("/dirac/d")
    assert res["OK"], res
    value = res["Value"]["Successful"]["/dirac/d"]
    assert value["Size"] == 5 + 5  # real.dat and the inside link to it
    assert value["Files"] == 2


@pytest.mark.parametrize("method, args", [
    ("getFileMetadata", ()), ("getFileSize", ()), ("isFile", ()), ("getFile", ("LOCAL",)),
    ("getDirectory", ("LOCAL",)), ("listDirectory", ()), ("getDirectoryMetadata", ()),
    ("getDirectorySize", ()), ("isDirectory", ()),
])
def test_no_method_reads_through_a_link_out(root, outside, tmp_path, method, args):
    plant_links(root, outside)
    local = tmp_path / "local"
    local.mkdir()
    args = tuple(str(local) if a == "LOCAL" else a for a in args)
    se = make_se(root)
    for lfn in ("/dirac/d/shadow-link", "/dirac/d/etc-link", "/dirac/d"):
        res = getattr(se, method)(lfn, *args)
        assert res["OK"], res
        assert not leaked(res["Value"]["Successful"]), (method, lfn, res)
    copied = [p for p in local.rglob("*") if p.is_file()]
    assert all(p.read_bytes() != SECRET and SECRET not in p.read_bytes() for p in copied), copied


def test_remove_directory_never_touches_link_targets(root, outside):
    plant_links(root, outside)
    se = make_se(root)
    assert se.removeDirectory("/dirac/d", recursive=True)["OK"]
    assert (outside / "shadow").read_bytes() == SECRET and (outside / "more").exists()


# -- item 12: orphaned temporaries ---------------------------------------------------------------
def orphan(directory: Path, final: str, size: int = 4096, age: float = 0) -> Path:
    """A temporary whose writer died after taking its lock (mode set), ``age`` s old."""
    path = Path(temp_name_for(str(directory / final)))
    path.write_bytes(b"p" * size)
    old = time.time() - age
    os.utime(path, (old, old))
    return path


def test_orphaned_temporaries_are_not_counted(root):
    orphan(root / "dirac" / "d", "big.dat", size=1 << 20)
    res = make_se(root).getDirectorySize("/dirac/d")
    assert res["OK"], res
    assert res["Value"]["Successful"]["/dirac/d"] == {"Files": 1, "Size": 5, "SubDirs": 0}
    listing = make_se(root).listDirectory("/dirac/d")["Value"]["Successful"]["/dirac/d"]
    assert list(listing["Files"]) == ["/dirac/d/real.dat"]


def test_remove_orphans_keeps_live_uploads(root):
    (root / "dirac" / "d" / "sub").mkdir()
    dead = [orphan(root / "dirac" / "d", "a.dat"), orphan(root / "dirac" / "d" / "sub", "b.dat")]
    with localfs.atomic_write(str(root / "dirac" / "d" / "live.dat")) as live:
        live.write(b"in progress")
        live_tmp = Path(live.name)
        os.utime(live_tmp, (time.time() - 3600,) * 2)  # old, but its writer is alive
        removed = localfs.remove_orphans(str(root))
        assert live_tmp.exists()
    assert removed == (2, 2 * 4096)
    assert not any(p.exists() for p in dead)
    assert (root / "dirac" / "d" / "live.dat").read_bytes() == b"in progress"
    assert (root / "dirac" / "d" / "real.dat").read_bytes() == b"12345"


def test_remove_orphans_spares_a_writer_setting_up(root):
    """Mode 0 and no lock: a writer between creating its temporary and locking it."""
    d = root / "dirac" / "d"
    young = Path(temp_name_for(str(d / "young.dat")))
    young.write_bytes(b"")
    os.chmod(young, 0)
    stale = orphan(d, "stale.dat", age=3600)
    os.chmod(stale, 0)
    assert localfs.remove_orphans(str(root)) == (1, 4096)
    assert young.exists() and not stale.exists()


def test_atomic_write_locks_before_it_sets_the_mode(root):
    target = root / "dirac" / "d" / "new.dat"
    with localfs.atomic_write(str(target), mode=0o640) as fh:
        assert os.stat(fh.name).st_mode & 0o777 == 0o640
        fh.write(b"x")
    assert target.stat().st_mode & 0o777 == 0o640


def test_remove_orphans_never_follows_links(root, outside):
    plant_links(root, outside)
    victim = orphan(outside, "x.dat")
    assert localfs.remove_orphans(str(root)) == (0, 0)
    assert victim.exists()


# -- item 13: concurrent creators ----------------------------------------------------------------
class MkdirRendezvous:
    """Make every thread reach ``os.mkdir`` of the same directory at the same moment: the
    check-then-create window that a race opens by chance is opened every time."""

    def __init__(self, monkeypatch, under: Path, parties: int) -> None:
        self.under = str(under)
        self.barriers: dict[str, threading.Barrier] = {}
        self.lock = threading.Lock()
        self.parties = parties
        real = os.mkdir

        def mkdir(path, mode=0o777, *, dir_fd=None):
            key = os.fspath(path)
            if dir_fd is None and key.startswith(self.under):
                with self.lock:
                    barrier = self.barriers.setdefault(key, threading.Barrier(self.parties))
                try:
                    barrier.wait(timeout=5)
                except threading.BrokenBarrierError:
                    pass
            return real(path, mode, dir_fd=dir_fd)

        monkeypatch.setattr(os, "mkdir", mkdir)


def test_parallel_put_file_into_one_new_tree(root, tmp_path, monkeypatch):
    threads_count = 16
    sources = []
    for n in range(threads_count):
        src = tmp_path / f"src{n}"
        src.write_bytes(os.urandom(100 + n))
        sources.append(src)
    MkdirRendezvous(monkeypatch, root / "dirac" / "new", threads_count)
    results: list[dict] = [{}] * threads_count

    def put(n: int) -> None:
        se = make_se(root)
        results[n] = se.putFile({f"/dirac/new/a/b/c/f{n}": str(sources[n])})

    threads = [threading.Thread(target=put, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failed = [r for r in results if not r.get("OK") or r["Value"]["Failed"]]
    assert not failed, failed
    assert len(list((root / "dirac" / "new" / "a" / "b" / "c").iterdir())) == threads_count


def test_parallel_create_directory(root, monkeypatch):
    threads_count = 16
    MkdirRendezvous(monkeypatch, root / "dirac" / "made", threads_count)
    results: list[dict] = [{}] * threads_count

    def create(n: int) -> None:
        results[n] = make_se(root).createDirectory("/dirac/made/x/y")

    threads = [threading.Thread(target=create, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r.get("OK") and not r["Value"]["Failed"] for r in results), results
    assert (root / "dirac" / "made" / "x" / "y").is_dir()
