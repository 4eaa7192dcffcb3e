"""Bulk (tar) streams: round trips through a bounded pipe, and unsafe archives refused."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from seproxy.transfer import bulk
from seproxy.transfer.filehelper import FileHelper, StreamOptions


def make_tree(root):
    (root / "top" / "sub" / "deeper").mkdir(parents=True)
    (root / "top" / "a.txt").write_bytes(b"alpha\n")
    (root / "top" / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (root / "top" / "sub" / "deeper" / "empty").write_bytes(b"")
    (root / "single.dat").write_bytes(b"x" * 70_000)
    return [str(root / "top"), str(root / "single.dat")]


def tree_of(root):
    found = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = open(path, "rb").read()
    return found


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("onthefly", [True, False])
@pytest.mark.parametrize("options", [StreamOptions(), StreamOptions(chunk_size=64 * 1024, window=4)])
def test_bulk_round_trip(transport_pair, background, tmp_path, compress, onthefly, options):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    entries = make_tree(src)
    client, server = transport_pair
    receiver = FileHelper(server, "json", options=options)
    got = background(lambda: receiver.networkToBulk(str(dest), compress))
    assert FileHelper(client, "json", options=options).bulkToNetwork(entries, compress, onthefly)["OK"]
    assert got.result()["OK"]
    assert tree_of(dest) == tree_of(src)
    assert not [p for p in os.listdir(dest) if p.startswith(bulk.STAGING_PREFIX)]


def malicious_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        good = tarfile.TarInfo("fine.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        info = tarfile.TarInfo({"dotdot": "../evil", "absolute": "/tmp/seproxy-evil-abs",
                                "symlink": "link", "hardlink": "hard", "device": "dev"}[kind])
        if kind in ("dotdot", "absolute"):
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        elif kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
            tar.addfile(info)
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("kind,reason", [
    ("dotdot", "'../evil' (path outside the destination)"),
    ("absolute", "absolute path"),
    ("symlink", "link pointing outside the destination"),
    ("hardlink", "absolute link"),
    ("device", "device or other special file"),
])
def test_unsafe_members_refused(transport_pair, background, tmp_path, kind, reason):
    dest = tmp_path / "a" / "dest"
    dest.mkdir(parents=True)
    client, server = transport_pair
    receiver = FileHelper(server, "dencode")
    got = background(lambda: receiver.networkToBulk(str(dest), True))
    FileHelper(client, "dencode").stringToNetwork(malicious_tar(kind))
    result = got.result()
    assert not result["OK"]
    assert result["Message"].startswith("Error while extracting bulk: refused member")
    assert reason in result["Message"]
    assert str(tmp_path) not in result["Message"]          # no server paths leak
    assert os.listdir(dest) == []                           # nothing kept, not even fine.txt
    assert sorted(os.listdir(tmp_path / "a")) == ["dest"]  # nothing written outside
    assert not os.path.exists("/tmp/seproxy-evil-abs")


def test_truncated_archive_leaves_nothing(transport_pair, background, tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    make_tree(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|") as tar:
        tar.add(src / "top", "top")
    client, server = transport_pair
    receiver = FileHelper(server, "json")
    got = background(lambda: receiver.networkToBulk(str(dest), False))
    FileHelper(client, "json").stringToNetwork(buf.getvalue()[:200_000])
    assert not got.result()["OK"]
    assert os.listdir(dest) == []


def test_missing_destination(transport_pair, tmp_path):
    result = FileHelper(transport_pair[1], "json").networkToBulk(str(tmp_path / "nope"))
    assert result["Message"] == f"{tmp_path / 'nope'} is not a directory for bulk receival"


def test_unreadable_source_sends_error_not_eof(transport_pair, background, tmp_path):
    (tmp_path / "dir").mkdir()
    secret = tmp_path / "dir" / "secret"
    secret.write_bytes(b"s")
    secret.chmod(0)
    if os.access(secret, os.R_OK):        # root reads anything: use a dangling symlink instead
        secret.chmod(0o600)
        os.symlink(tmp_path / "gone", tmp_path / "dir" / "dangling")
        entries = [str(tmp_path / "dir" / "dangling")]
    else:
        entries = [str(tmp_path / "dir")]
    dest = tmp_path / "dest"
    dest.mkdir()
    client, server = transport_pair
    receiver = FileHelper(server, "json")
    got = background(lambda: receiver.networkToBulk(str(dest), True))
    sent = FileHelper(client, "json").bulkToNetwork(entries, True, True)
    assert not sent["OK"] and "Error while creating bulk" in sent["Message"]
    assert not got.result()["OK"]
    assert os.listdir(dest) == []


def test_list_tar(tmp_path):
    data = malicious_tar("dotdot")
    path = tmp_path / "x.tar.bz2"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    assert FileHelper().bulkListToNetwork(fd, True) == {"OK": True, "Value": ["fine.txt", "../evil"]}
    path.write_bytes(b"not a tar at all" * 100)
    fd = os.open(path, os.O_RDONLY)
    assert FileHelper().bulkListToNetwork(fd, True)["Message"].startswith("Error")


def test_bulk_name():
    assert bulk.bulk_name("b1", True) == "b1.tar.bz2"
    assert bulk.bulk_name("b1", False) == "b1.tar"
