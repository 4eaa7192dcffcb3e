"""Security cases of the StorageElementProxy (issue 7's must-show list).

Each case checks the error is clear, the service keeps serving, nothing outside the
cache is read or written, and no partial file appears under a final name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from seproxy.returnvalues import S_OK
from seproxy.staging.namespace import namespace_id
from seproxy.transfer.filehelper import FileHelper
from tests.conftest import wait_for

SE = "SE-LOCAL"
USER_DN = "/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser"

BAD_IDS = ["../x", "/etc/passwd", "getFile/../../x", "getFile/%2e%2e", "putFile/%2e%2e%2fx",
           "getFile/a\x00b", "putFile/../../../tmp/evil", "getFile/..", "getFile\\..\\x"]


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def final_files(p) -> list[Path]:
    return [f for f in (p.base / "ns").rglob("*") if f.is_file()]


def tmp_files(p) -> list[Path]:
    return [f for f in (p.base / "tmp").rglob("*") if f.is_file()]


def test_bad_file_ids_for_download(se_proxy, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for file_id in BAD_IDS:
        out = tmp_path / "out"
        res = se_proxy.transfer().receiveFile(str(out), file_id)
        assert not res["OK"], file_id
        assert "Invalid fileID" in res["Message"], (file_id, res)
        assert not out.exists()  # nothing came back, and no empty or partial file is left
    assert victim.read_text() == "precious"
    assert se_proxy.rpc().ping()["OK"]


def test_bad_file_ids_for_upload(se_proxy, tmp_path):
    src = tmp_path / "src"
    src.write_bytes(b"payload")
    se_proxy.proxy()
    before = snapshot(tmp_path)
    for file_id in BAD_IDS:
        res = se_proxy.transfer().sendFile(str(src), file_id)
        assert not res["OK"] and "Invalid fileID" in res["Message"], (file_id, res)
    new = {str(p.relative_to(tmp_path)) for p in (se_proxy.base / "ns").rglob("*")}
    assert snapshot(tmp_path) - before <= new
    assert not Path("/tmp/evil").exists()
    assert final_files(se_proxy) == []
    assert se_proxy.rpc().ping()["OK"]


def test_symlink_planted_in_cache_is_not_followed(se_proxy, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read or delete")
    ns = se_proxy.base / "ns" / namespace_id(USER_DN, "dirac_user")
    (ns / "getFile").mkdir(parents=True, exist_ok=True)
    (ns / "getFile" / "link").symlink_to(secret)
    out = tmp_path / "out"
    res = se_proxy.transfer().receiveFile(str(out), "getFile/link")
    assert not res["OK"] and res["Message"] == "Failed to get file descriptor"
    assert not out.exists()
    assert secret.read_text() == "do not read or delete"
    # an upload onto the planted name replaces the link, never writes through it
    (ns / "putFile").mkdir(exist_ok=True)
    (ns / "putFile" / "up").symlink_to(secret)
    src = tmp_path / "src"
    src.write_bytes(b"new content")
    assert se_proxy.transfer().sendFile(str(src), "putFile/up")["OK"]
    assert secret.read_text() == "do not read or delete"
    assert not (ns / "putFile" / "up").is_symlink()
    # a symlinked namespace directory is refused outright
    shutil.rmtree(ns)
    outside = tmp_path / "outside"
    outside.mkdir()
    ns.symlink_to(outside, target_is_directory=True)
    res = se_proxy.transfer().sendFile(str(src), "putFile/x")
    assert not res["OK"] and "not a plain directory" in res["Message"]
    assert list(outside.iterdir()) == []
    assert se_proxy.rpc().ping()["OK"]


def test_other_user_cannot_fetch_or_overwrite_staged_file(se_proxy, tmp_path):
    (se_proxy.storage / "dirac").mkdir()
    (se_proxy.storage / "dirac" / "mine.dat").write_bytes(b"alice's data")
    assert se_proxy.rpc().prepareFile(SE, "/dirac/mine.dat")["OK"]
    stolen = tmp_path / "stolen"
    res = se_proxy.transfer(user="otheruser").receiveFile(str(stolen), "getFile/mine.dat")
    assert not res["OK"] and res["Message"] == "File mine.dat does not exist"
    assert not stolen.exists()
    # same user, other group: another namespace as well
    res = se_proxy.transfer(group="dirac_admin").receiveFile(str(stolen), "getFile/mine.dat")
    assert not res["OK"]
    # B stages the same base name: no collision
    evil = tmp_path / "mine.dat"
    evil.write_bytes(b"bob's data")
    assert se_proxy.transfer(user="otheruser").sendFile(str(evil), "putFile/mine.dat")["OK"]
    mine = tmp_path / "mine.out"
    assert se_proxy.transfer().receiveFile(str(mine), "getFile/mine.dat")["OK"]
    assert mine.read_bytes() == b"alice's data"


def test_expired_http_key(se_proxy_factory, tmp_path):
    import http.client

    p = se_proxy_factory(HttpKeyLifetime=0.5, HttpPurgeInterval=0.05)
    (p.storage / "dirac").mkdir()
    (p.storage / "dirac" / "e.txt").write_bytes(b"expiring")
    res = p.rpc().prepareFileForHTTP("/dirac/e.txt")
    assert res["OK"] and "HttpKey" in res
    assert wait_for(lambda: not os.path.exists(res["CachePath"]))  # purged in the background
    conn = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=10)
    conn.request("GET", "/" + res["HttpKey"])
    reply = conn.getresponse()
    assert reply.status == 401 and b"expiring" not in reply.read()


def test_upload_interrupted_mid_stream(se_proxy, tmp_path):
    client = se_proxy.transfer()
    result, transport = client._connect_and_propose("FileTransfer", "FromClient")
    assert result["OK"], result
    transport.send_data(S_OK(["putFile/partial.bin", "", 10 * 1024 * 1024]))
    assert transport.receive_data()["OK"]
    helper = FileHelper(transport)
    for _ in range(3):
        assert helper.sendData(os.urandom(1024 * 1024))["OK"]
    assert wait_for(lambda: any(f.stat().st_size > 0 for f in tmp_files(se_proxy)))
    transport.close()  # the client vanishes
    assert wait_for(lambda: tmp_files(se_proxy) == [])
    assert final_files(se_proxy) == []
    assert se_proxy.rpc().ping()["OK"]
    res = se_proxy.rpc().uploadFile(SE, "/dirac/partial.bin")
    assert not res["OK"] and res["Message"] == "File partial.bin does not exist"
    assert not (se_proxy.storage / "dirac" / "partial.bin").exists()


def test_checksum_mismatch_leaves_no_file(se_proxy, tmp_path):
    client = se_proxy.transfer()
    result, transport = client._connect_and_propose("FileTransfer", "FromClient")
    transport.send_data(S_OK(["putFile/crc.bin", "", 5]))
    assert transport.receive_data()["OK"]
    helper = FileHelper(transport)
    assert helper.sendData(b"hello")["OK"]
    transport.send_data(S_OK([False, "0" * 32]))  # wrong MD5
    final = transport.receive_data()
    transport.close()
    assert not final["OK"] and "Failed to put file putFile/crc.bin" in final["Message"]
    assert wait_for(lambda: tmp_files(se_proxy) == [])
    assert final_files(se_proxy) == []


@pytest.fixture
def small_fs(tmp_path):
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount_point)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here (needs root/CAP_SYS_ADMIN): {exc}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


def test_disk_full(se_proxy_factory, small_fs, tmp_path):
    p = se_proxy_factory(BasePath=str(small_fs / "cache"), MinFreeSpace="0")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    # declared size too big: refused before any byte is read
    res = p.transfer().sendFile(str(big), "putFile/big.bin")
    assert not res["OK"] and res["Message"] == "Not enough disk space"
    # size unknown (a pipe): the disk fills up mid-write
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with open(big, "rb") as src, os.fdopen(write_fd, "wb") as sink:
            try:
                shutil.copyfileobj(src, sink)
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        res = p.transfer().sendFile(read_fd, "putFile/big.bin")
    finally:
        os.close(read_fd)
        feeder.join(timeout=30)
    assert not res["OK"]
    assert "No space left on device" in res["Message"] or "disk space" in res["Message"]
    assert wait_for(lambda: tmp_files(p) == [])  # the server cleans up after answering
    assert final_files(p) == []
    # still serving, and a small upload works once space is back
    small = tmp_path / "small.bin"
    small.write_bytes(b"fits")
    assert p.put(small, "/dirac/small.bin")["OK"]
    assert (p.storage / "dirac" / "small.bin").read_bytes() == b"fits"


def test_max_file_size(se_proxy_factory, tmp_path):
    p = se_proxy_factory(MaxFileSize="1M")
    src = tmp_path / "two.bin"
    src.write_bytes(os.urandom(2 * 1024 * 1024))
    res = p.transfer().sendFile(str(src), "putFile/two.bin")
    assert not res["OK"] and "MaxFileSize" in res["Message"]
    assert final_files(p) == []


WHITELIST_CASES = [
    ("__class__", "Method '__class__' isn't implemented!"),
    ("__init__", "Method '__init__' isn't implemented!"),
    ("_execute", "Method '_execute' isn't implemented!"),
    ("getStorageParameters", "Method 'getStorageParameters' is not allowed through the "
                             "StorageElementProxy"),
    ("getFile", "Method 'getFile' is not allowed through the StorageElementProxy"),
    ("putFile", "Method 'putFile' is not allowed through the StorageElementProxy"),
]


def test_call_proxy_method_whitelist(se_proxy):
    rpc = se_proxy.rpc()
    for name, message in WHITELIST_CASES:
        res = rpc.callProxyMethod(SE, name, [{"/dirac/x": "/etc/passwd"}], {})
        assert not res["OK"] and res["Message"] == message
    res = rpc.callProxyMethod(SE, "exists", [["/dirac/x"]], {"__class__": 1})
    assert not res["OK"]
    outside = se_proxy.storage.parent / "outside.txt"
    outside.write_text("keep")
    for lfn in ("/dirac/../outside.txt", "/dirac/%2e%2e/outside.txt", "/othervo/x", "dirac/x"):
        res = rpc.callProxyMethod(SE, "removeFile", [[lfn]], {})
        assert not res["OK"] or lfn in res["Value"]["Failed"], (lfn, res)
    assert outside.read_text() == "keep"
    assert not (se_proxy.storage / "dirac" / "x").exists()
    assert rpc.ping()["OK"]
