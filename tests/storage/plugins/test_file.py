"""File plugin specifics: DIRAC's texts, atomic writes, the adler32 xattr, full disk, symlinks."""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from seproxy.localfs import XATTR_NAME, get_checksum_xattr
from seproxy.storage import StorageElement
from seproxy.storage.plugins.file import FileStorage
from tests.storage.helpers import file_section, make_config, se_tree


def make_se(root: Path, **extra: str) -> StorageElement:
    tree = se_tree(
        "SE-F",
        {"File": file_section(str(root), **extra)},
        AccessProtocols="file",
        WriteProtocols="file",
    )
    return StorageElement("SE-F", config=make_config(tree))


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def all_names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root"
    path.mkdir()
    return path


def test_dirac_texts(root: Path, tmp_path: Path) -> None:
    se = make_se(root)
    (root / "dirac" / "d").mkdir(parents=True)
    (root / "dirac" / "f").write_bytes(b"abc")
    d, f, missing = "/dirac/d", "/dirac/f", "/dirac/missing"
    assert se.getFileSize(d)["Value"]["Failed"] == {d: "Is a directory"}
    assert se.getFileMetadata(d)["Value"]["Failed"] == {d: "Is a directory"}
    assert se.getDirectoryMetadata(f)["Value"]["Failed"] == {f: "Not a directory"}
    assert se.isFile(missing)["Value"]["Failed"] == {missing: "No such file or directory"}
    assert se.isDirectory(missing)["Value"]["Failed"] == {missing: "No such file or directory"}
    reason = se.getFileSize(missing)["Value"]["Failed"][missing]
    assert reason == f"[Errno 2] No such file or directory: '{root}/dirac/missing'"
    assert se.removeDirectory(missing)["Value"]["Successful"] == {missing: True}
    assert se.getDirectory(missing, localPath=str(tmp_path))["Value"]["Failed"] == {
        missing: {"Files": 0, "Size": 0}
    }
    plugin = se.storages["File"]
    res = plugin.putFile(f"{root}/dirac/x")
    assert not res["OK"]
    assert res["Message"] == (
        "FileStorage.putFile: path argument must be a dictionary "
        "(or a list of dictionary) { url : local path}"
    )
    meta = se.getFileMetadata(f)["Value"]["Successful"][f]
    assert meta["Checksum"] == adler(b"abc")
    assert {k: meta[k] for k in ("Cached", "Migrated", "Lost", "Unavailable", "Accessible")} == {
        "Cached": 1,
        "Migrated": 0,
        "Lost": 0,
        "Unavailable": 0,
        "Accessible": True,
    }
    st = (root / "dirac" / "f").stat()
    assert meta["ModTime"] == st.st_mtime and meta["Mode"] == st.st_mode & 0o7777


def test_put_stores_xrootd_checksum_attribute(root: Path, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    os.chmod(src, 0o640)
    se = make_se(root)
    assert se.putFile({"/dirac/a/src.bin": str(src)})["Value"]["Successful"] == {
        "/dirac/a/src.bin": 100_000
    }
    dest = root / "dirac" / "a" / "src.bin"
    try:
        record = os.getxattr(dest, XATTR_NAME)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip(f"filesystem of {root} has no user xattrs")
        raise
    assert len(record) == 96
    name, fm_time, _cs, _r1, _r2, length, value = struct.unpack(">16sqihBB64s", record)
    assert name.rstrip(b"\0") == b"adler32" and length == 4
    assert value[:4].hex() == adler(data)
    assert fm_time == int(dest.stat().st_mtime)
    assert get_checksum_xattr(str(dest)) == adler(data)
    # copy2 semantics: permission bits and mtime of the source are kept
    assert (dest.stat().st_mode & 0o777) == 0o640
    assert int(dest.stat().st_mtime) == int(src.stat().st_mtime)
    # a modified file invalidates the attribute: metadata recomputes the checksum
    dest.write_bytes(b"changed")
    os.utime(dest, (1_000_000, 1_000_000))
    assert get_checksum_xattr(str(dest)) is None
    assert se.getFileMetadata("/dirac/a/src.bin")["Value"]["Successful"]["/dirac/a/src.bin"][
        "Checksum"
    ] == adler(b"changed")


def test_failed_copy_leaves_no_file_and_no_temp(root: Path, tmp_path: Path) -> None:
    se = make_se(root)
    (root / "dirac").mkdir()
    old = root / "dirac" / "keep.bin"
    old.write_bytes(b"old content")
    res = se.putFile({"/dirac/keep.bin": str(tmp_path / "no-such-source")})["Value"]
    assert (
        "/dirac/keep.bin" in res["Failed"]
        and "No such file or directory" in res["Failed"]["/dirac/keep.bin"]
    )
    res = se.putFile({"/dirac/keep.bin": str(tmp_path)})["Value"]  # a directory as source
    assert "/dirac/keep.bin" in res["Failed"]
    res = se.putFile({"/dirac/keep.bin": str(_write(tmp_path / "n.bin", b"new"))}, sourceSize=99)[
        "Value"
    ]
    assert (
        res["Failed"]["/dirac/keep.bin"]
        == "Source and destination file sizes do not match (99 vs 3)."
    )
    assert old.read_bytes() == b"old content"  # never replaced by a bad copy
    assert all_names(root) == ["dirac", "dirac/keep.bin"]


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_listing_hides_uploads_in_progress(root: Path) -> None:
    (root / "dirac").mkdir()
    (root / "dirac" / "done.txt").write_bytes(b"x")
    (root / "dirac" / ".partial.txt.seproxy-0123456789ab.part").write_bytes(b"half")
    listing = make_se(root).listDirectory("/dirac")["Value"]["Successful"]["/dirac"]
    assert list(listing["Files"]) == ["/dirac/done.txt"]


def test_symlink_escape_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    (root / "dirac").mkdir()
    os.symlink(outside, root / "dirac" / "link")
    se = make_se(root)
    lfn = "/dirac/link/secret.txt"
    got = tmp_path / "got"
    got.mkdir()
    for res in (
        se.getFile(lfn, localPath=str(got)),
        se.getFileMetadata(lfn),
        se.removeFile(lfn),
        se.putFile({lfn: str(outside / "secret.txt")}),
        se.listDirectory("/dirac/link"),
    ):
        value = res["Value"]
        assert not value["Successful"], value
        key = next(iter(value["Failed"]))
        assert "outside the storage base path" in value["Failed"][key]
    assert se.exists(lfn)["Value"] == {"Failed": {}, "Successful": {lfn: False}}
    assert (outside / "secret.txt").read_bytes() == b"secret"
    assert os.listdir(got) == []


def test_plugin_refuses_urls_outside_base_path(root: Path, tmp_path: Path) -> None:
    plugin = FileStorage("SE-F", file_section(str(root)))
    res = plugin.removeFile([f"{root}/../victim", "/etc/passwd"])["Value"]
    assert set(res["Failed"]) == {f"{root}/../victim", "/etc/passwd"}
    assert os.path.exists("/etc/passwd")


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (needs root and mount rights)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("full-disk test needs root to mount a size-limited tmpfs")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", f"seproxy-{uuid.uuid4().hex[:8]}", str(mnt)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_leaves_no_partial_file(small_fs: Path, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    small = tmp_path / "small.bin"
    small.write_bytes(b"fits")
    se = make_se(small_fs)
    res = se.putFile({"/dirac/big.bin": str(src), "/dirac/small.bin": str(small)})["Value"]
    assert res["Successful"] == {"/dirac/small.bin": 4}
    assert "No space left on device" in res["Failed"]["/dirac/big.bin"]
    assert all_names(small_fs) == ["dirac", "dirac/small.bin"]  # no big.bin, no temporary file
    # the service keeps serving: space is free again, a later upload works
    assert se.putFile({"/dirac/again.bin": str(small)})["Value"]["Successful"] == {
        "/dirac/again.bin": 4
    }


def test_block_size_option_is_used(root: Path, tmp_path: Path) -> None:
    se = make_se(root, BlockSize="4096")
    assert se.storages["File"].block_size == 4096
    data = os.urandom(10_000)
    lfn = "/dirac/b.bin"
    assert se.putFile({lfn: str(_write(tmp_path / "b.bin", data))})["Value"]["Successful"] == {
        lfn: 10_000
    }
    assert (root / "dirac" / "b.bin").read_bytes() == data
