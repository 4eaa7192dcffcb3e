"""Hardening cases of the StorageElementProxy (issue 17): announced sizes, free space,
byte-unsafe LFNs and concurrent uploads into one new directory.

Each case checks the answer is one clean error, nothing partial or empty is left behind
and the service keeps serving.
"""

from __future__ import annotations

import io
import os
import subprocess
import threading
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.handler.test_security import final_files, tmp_files

SE = "SE-LOCAL"


def raw_upload(p, file_id: str, announced: object, data: bytes) -> dict:
    """A ``FromClient`` transfer announcing ``announced`` bytes and sending ``data``."""
    client = p.transfer()
    return client._run("FromClient", (file_id, "", announced),
                       lambda helper: helper.DataSourceToNetwork(io.BytesIO(data)))


@pytest.mark.parametrize("announced", [-2, -1024, 1.5, "10", True, None, [10]])
def test_invalid_announced_size_is_refused(se_proxy, announced):
    res = raw_upload(se_proxy, "putFile/bad-size.bin", announced, b"x" * 1000)
    assert not res["OK"]
    assert res["Message"].startswith("Invalid file size"), res
    assert final_files(se_proxy) == []
    assert wait_for(lambda: tmp_files(se_proxy) == [])
    assert se_proxy.rpc().ping()["OK"]


def test_announced_size_is_enforced_while_streaming(se_proxy):
    data = os.urandom(20 * 1024 * 1024)
    res = raw_upload(se_proxy, "putFile/liar.bin", 10, data)
    assert not res["OK"], "20 MiB accepted after announcing 10 bytes"
    assert "announced" in res["Message"], res
    assert wait_for(lambda: tmp_files(se_proxy) == [])
    assert final_files(se_proxy) == []
    assert se_proxy.rpc().ping()["OK"]


def test_announced_zero_counts_as_unknown(se_proxy):
    """DIRAC announces 0 for a pipe (stat of a stream): not a limit, like -1."""
    res = raw_upload(se_proxy, "putFile/zero.bin", 0, b"from a pipe")
    assert res["OK"], res
    assert [f.read_bytes() for f in final_files(se_proxy)] == [b"from a pipe"]


def test_exact_and_unknown_sizes_still_work(se_proxy):
    data = os.urandom(3 * 1024 * 1024 + 7)
    assert raw_upload(se_proxy, "putFile/exact.bin", len(data), data)["OK"]
    assert raw_upload(se_proxy, "putFile/unknown.bin", -1, data)["OK"]  # DIRAC's "unknown"
    names = sorted(f.name for f in final_files(se_proxy))
    assert names == ["exact.bin", "unknown.bin"]
    assert all(f.read_bytes() == data for f in final_files(se_proxy))


@pytest.fixture
def tmpfs16(tmp_path):
    mount_point = tmp_path / "fs16"
    mount_point.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here (needs root/CAP_SYS_ADMIN): {exc}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


@pytest.mark.parametrize("announced", [-1, 0])
def test_min_free_space_kept_for_unknown_size(se_proxy_factory, tmpfs16, announced):
    """MaxFileSize 0 and an unknown size (-1, or 0 from a pipe): MinFreeSpace is kept."""
    p = se_proxy_factory(BasePath=str(tmpfs16 / "cache"), MinFreeSpace="8M", MaxFileSize="0")
    data = os.urandom(12 * 1024 * 1024)  # fits the 16 MiB disk, but not above 8 MiB free
    res = raw_upload(p, "putFile/fill.bin", announced, data)
    assert not res["OK"] and "Not enough disk space" in res["Message"], res
    assert wait_for(lambda: tmp_files(p) == [])
    assert final_files(p) == []
    st = os.statvfs(tmpfs16)
    assert st.f_bavail * st.f_frsize >= 8 * 1024 * 1024
    assert raw_upload(p, "putFile/small.bin", -1, b"fits")["OK"]


def test_concurrent_uploads_reserve_free_space(se_proxy_factory, tmpfs16):
    """Two announced uploads that fit one at a time but not together above MinFreeSpace."""
    p = se_proxy_factory(BasePath=str(tmpfs16 / "cache"), MinFreeSpace="6M")
    state = p.state
    free = state.disk_free()
    first = state.reserve_space(free - state.min_free - 1024 * 1024)
    assert first is not None
    try:
        res = raw_upload(p, "putFile/second.bin", 2 * 1024 * 1024, os.urandom(2 * 1024 * 1024))
        assert not res["OK"] and res["Message"] == "Not enough disk space", res
    finally:
        first.release()
    assert raw_upload(p, "putFile/second.bin", 2 * 1024 * 1024, os.urandom(2 * 1024 * 1024))["OK"]


# -- item 11: byte-unsafe LFNs -----------------------------------------------------------------
#: (encoding, LFN as sent): DEncode carries raw bytes (the service sees surrogate escapes),
#: DIRAC JSON carries lone surrogates as \\uXXXX escapes
BAD_LFNS = [("dencode", b"/dirac/bad-\xff.dat"), ("dencode", b"/dirac/ok/\x80\x81"),
            ("json", "/dirac/\ud800"), ("json", "/dirac/bad-\udcff.dat")]


@pytest.mark.parametrize("encoding, lfn", BAD_LFNS)
def test_prepare_file_for_http_non_utf8_lfn(se_proxy, encoding, lfn):
    http_cache = se_proxy.state.cache.http_cache
    before = set(http_cache.iterdir())
    for value in (lfn, [lfn], ["/dirac/fine.dat", lfn]):
        res = se_proxy.rpc(encoding=encoding).prepareFileForHTTP(value)
        assert not res["OK"], res
        assert "Traceback" not in res["Message"] and "surrogates" not in res["Message"], res
        assert "UTF-8" in res["Message"], res
    assert set(http_cache.iterdir()) == before  # no empty key directory left
    assert se_proxy.rpc().ping()["OK"]


@pytest.mark.parametrize("encoding, lfn", BAD_LFNS)
@pytest.mark.parametrize("method", ["uploadFile", "prepareFile"])
def test_staging_non_utf8_lfn(se_proxy, method, encoding, lfn):
    res = getattr(se_proxy.rpc(encoding=encoding), method)(SE, lfn)
    assert not res["OK"] and "UTF-8" in res["Message"], res
    assert se_proxy.rpc().ping()["OK"]


@pytest.mark.parametrize("encoding, lfn", BAD_LFNS)
def test_call_proxy_method_non_utf8_lfn(se_proxy, encoding, lfn):
    for args in ([lfn], [[lfn]], [{lfn: "x"}]):
        res = se_proxy.rpc(encoding=encoding).callProxyMethod(SE, "exists", args, {})
        assert not res["OK"] and "UTF-8" in res["Message"], res
        assert "Traceback" not in res["Message"]


# -- item 13: concurrent creators of one new directory ------------------------------------------
def test_parallel_uploads_into_one_new_directory(se_proxy, tmp_path):
    """8 clients put files into the same new LFN directory at once: all succeed."""
    count = 8
    sources = []
    for n in range(count):
        src = tmp_path / f"f{n}.bin"
        src.write_bytes(os.urandom(1024 + n))
        sources.append(src)
    barrier = threading.Barrier(count)
    results: list[dict] = [{}] * count

    def put(n: int) -> None:
        lfn = f"/dirac/conformance/new/deep/f{n}.bin"
        sent = se_proxy.transfer().sendFile(str(sources[n]), f"putFile/f{n}.bin")
        assert sent["OK"], sent
        barrier.wait(timeout=60)
        results[n] = se_proxy.rpc().uploadFile(SE, lfn)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r.get("OK") for r in results), results
    stored = Path(se_proxy.storage) / "dirac" / "conformance" / "new" / "deep"
    assert sorted(f.name for f in stored.iterdir()) == sorted(f"f{n}.bin" for n in range(count))


# -- item 12: orphaned temporaries in the storage element ---------------------------------------
def test_orphaned_se_temporaries_cleaned_at_start_up(se_proxy_factory, tmp_path):
    from seproxy.localfs import temp_name_for

    storage = tmp_path / "storage" / "dirac" / "d"
    storage.mkdir(parents=True)
    (storage / "kept.dat").write_bytes(b"kept")
    orphan = Path(temp_name_for(str(storage / "killed.dat")))
    orphan.write_bytes(b"p" * 100_000)  # what a kill -9 during uploadFile leaves
    os.chmod(orphan, 0o644)  # a writer that got past its lock, then died
    p = se_proxy_factory()
    assert wait_for(p.state.orphans_cleaned.is_set, 30)
    assert not orphan.exists()
    assert (storage / "kept.dat").read_bytes() == b"kept"
    res = p.rpc().callProxyMethod(SE, "getDirectorySize", ["/dirac/d"], {})
    assert res["OK"] and res["Value"]["Successful"]["/dirac/d"]["Size"] == 4, res


@pytest.mark.parametrize("encoding", ["dencode", "json"])
def test_listing_a_non_utf8_file_name(se_proxy, encoding):
    """A name on disk that is not UTF-8: one clean answer, never a traceback."""
    d = Path(se_proxy.storage) / "dirac" / "odd"
    d.mkdir(parents=True)
    (d / "fine.dat").write_bytes(b"x")
    with open(os.path.join(os.fsencode(d), b"bad-\xff.dat"), "wb") as fh:
        fh.write(b"y")
    res = se_proxy.rpc(encoding=encoding).callProxyMethod(SE, "listDirectory", ["/dirac/odd"], {})
    assert "Traceback" not in str(res) and "surrogates" not in str(res), res
    if res["OK"]:
        assert "/dirac/odd/fine.dat" in res["Value"]["Successful"]["/dirac/odd"]["Files"]
    assert se_proxy.rpc().ping()["OK"]
