"""The plugin conformance suite: the same StorageElement calls, every plugin, its real server.

Each test runs once per backend of ``tests/storage/conftest.py`` (File, S3,
XROOT, DIP) and checks DIRAC's bulk results: values in ``Successful``, reasons
in ``Failed``, bad LFNs refused before any plugin is touched.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from seproxy.returnvalues import returnSingleResult
from tests.storage.conftest import Backend


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def ok(result: dict) -> dict:
    assert result["OK"], result
    return result["Value"]


def test_put_get_roundtrip_and_metadata(backend: Backend) -> None:
    se = backend.se
    data = os.urandom(300_000) + b"tail"
    src = write(backend.tmp / "src" / "data.bin", data)
    lfn = backend.lfn("sub", "data.bin")

    assert ok(se.putFile({lfn: str(src)})) == {"Failed": {}, "Successful": {lfn: len(data)}}
    assert ok(se.exists(lfn))["Successful"] == {lfn: True}
    assert ok(se.isFile(lfn))["Successful"] == {lfn: True}
    assert ok(se.getFileSize(lfn))["Successful"] == {lfn: len(data)}
    meta = ok(se.getFileMetadata(lfn))["Successful"][lfn]
    assert meta["Size"] == len(data)
    assert meta["File"] is True and meta["Directory"] is False
    assert meta["Checksum"] == adler(data)
    assert meta["Accessible"] is True
    assert ok(se.isDirectory(backend.lfn("sub")))["Successful"] == {backend.lfn("sub"): True}
    assert ok(se.isDirectory(lfn))["Successful"] == {lfn: False}

    dest = backend.tmp / "download"
    dest.mkdir()
    assert ok(se.getFile(lfn, localPath=str(dest))) == {
        "Failed": {},
        "Successful": {lfn: len(data)},
    }
    assert (dest / "data.bin").read_bytes() == data
    assert sorted(os.listdir(dest)) == ["data.bin"]  # no temporary file left behind

    single = returnSingleResult(se.getFileSize(lfn))
    assert single["OK"] and single["Value"] == len(data)


def test_overwrite_replaces_content(backend: Backend) -> None:
    se = backend.se
    lfn = backend.lfn("f.txt")
    ok(se.putFile({lfn: str(write(backend.tmp / "a" / "f.txt", b"first version"))}))
    ok(se.putFile({lfn: str(write(backend.tmp / "b" / "f.txt", b"second"))}))
    out = backend.tmp / "out"
    out.mkdir()
    assert ok(se.getFile(lfn, localPath=str(out))) == {"Failed": {}, "Successful": {lfn: 6}}
    assert (out / "f.txt").read_bytes() == b"second"
    assert ok(se.getFileMetadata(lfn))["Successful"][lfn]["Checksum"] == adler(b"second")


def test_missing_file(backend: Backend) -> None:
    se = backend.se
    lfn = backend.lfn("absent.bin")
    assert ok(se.exists(lfn)) == {"Failed": {}, "Successful": {lfn: False}}
    for method in ("isFile", "getFileSize", "getFileMetadata"):
        value = ok(getattr(se, method)(lfn))
        assert value["Successful"] == {} and lfn in value["Failed"], (method, value)
        assert value["Failed"][lfn]
    out = backend.tmp / "out"
    out.mkdir()
    value = ok(se.getFile(lfn, localPath=str(out)))
    assert lfn in value["Failed"] and not value["Successful"]
    assert os.listdir(out) == []
    assert ok(se.removeFile(lfn)) == {"Failed": {}, "Successful": {lfn: True}}


def test_remove_file(backend: Backend) -> None:
    se = backend.se
    lfn = backend.lfn("gone.txt")
    ok(se.putFile({lfn: str(write(backend.tmp / "gone.txt", b"x" * 10))}))
    assert ok(se.removeFile(lfn)) == {"Failed": {}, "Successful": {lfn: True}}
    assert ok(se.exists(lfn))["Successful"] == {lfn: False}


def test_source_size_mismatch_leaves_nothing(backend: Backend) -> None:
    se = backend.se
    lfn = backend.lfn("sized.bin")
    src = write(backend.tmp / "sized.bin", b"0123456789")
    value = ok(se.putFile({lfn: str(src)}, sourceSize=11))
    assert value["Successful"] == {}
    assert value["Failed"][lfn] == "Source and destination file sizes do not match (11 vs 10)."
    assert ok(se.exists(lfn))["Successful"] == {lfn: False}
    assert ok(se.putFile({lfn: str(src)}, sourceSize=10))["Successful"] == {lfn: 10}


def test_directories(backend: Backend) -> None:
    se = backend.se
    top = backend.lfn("dir")
    assert ok(se.createDirectory(top)) == {"Failed": {}, "Successful": {top: True}}
    assert ok(se.createDirectory(top))["Successful"] == {top: True}  # idempotent
    assert ok(se.isDirectory(top))["Successful"] == {top: True}
    files = {
        backend.lfn("dir", "a.txt"): b"aaa",
        backend.lfn("dir", "b.txt"): b"bbbbb",
        backend.lfn("dir", "sub", "c.txt"): b"cc",
    }
    for i, (lfn, data) in enumerate(files.items()):
        ok(se.putFile({lfn: str(write(backend.tmp / f"s{i}" / os.path.basename(lfn), data))}))

    listing = ok(se.listDirectory(top))["Successful"][top]
    assert sorted(listing["Files"]) == [backend.lfn("dir", "a.txt"), backend.lfn("dir", "b.txt")]
    assert sorted(listing["SubDirs"]) == [backend.lfn("dir", "sub")]
    assert listing["Files"][backend.lfn("dir", "b.txt")]["Size"] == 5

    assert ok(se.getDirectorySize(top))["Successful"][top] == {"Files": 2, "Size": 8, "SubDirs": 1}
    dmeta = ok(se.getDirectoryMetadata(top))["Successful"][top]
    assert dmeta["Directory"] is True and dmeta["File"] is False
    value = ok(se.getDirectoryMetadata(backend.lfn("dir", "a.txt")))
    assert backend.lfn("dir", "a.txt") in value["Failed"]

    # non-recursive removal deletes only the files directly inside
    assert ok(se.removeDirectory(top))["Successful"] == {top: True}
    assert (
        ok(se.exists(backend.lfn("dir", "a.txt")))["Successful"][backend.lfn("dir", "a.txt")]
        is False
    )
    assert ok(se.exists(backend.lfn("dir", "sub", "c.txt")))["Successful"][
        backend.lfn("dir", "sub", "c.txt")
    ]

    removed = ok(se.removeDirectory(top, recursive=True))["Successful"][top]
    assert removed == {"FilesRemoved": 1, "SizeRemoved": 2}
    assert (
        ok(se.exists(backend.lfn("dir", "sub", "c.txt")))["Successful"][
            backend.lfn("dir", "sub", "c.txt")
        ]
        is False
    )


def test_put_and_get_directory(backend: Backend) -> None:
    se = backend.se
    src = backend.tmp / "tree"
    write(src / "x.txt", b"x" * 100)
    write(src / "deep" / "y.txt", b"y" * 50)
    lfn = backend.lfn("tree")
    assert ok(se.putDirectory({lfn: str(src)}))["Successful"] == {lfn: {"Files": 2, "Size": 150}}
    out = backend.tmp / "out"
    out.mkdir()
    assert ok(se.getDirectory(lfn, localPath=str(out)))["Successful"] == {
        lfn: {"Files": 2, "Size": 150}
    }
    assert (out / "tree" / "x.txt").read_bytes() == b"x" * 100
    assert (out / "tree" / "deep" / "y.txt").read_bytes() == b"y" * 50


def test_bad_lfns_are_refused_per_lfn_and_touch_nothing(backend: Backend) -> None:
    se = backend.se
    src = write(backend.tmp / "evil.txt", b"evil")
    good = backend.lfn("good.txt")
    bad = {
        f"{backend.base}/../escape.txt": "'.' and '..' components are not allowed",
        f"{backend.base}/%2e%2e/escape.txt": "'.' and '..' components are not allowed",
        "/other-vo/file.txt": "path must start with VO name (dirac)",
        "relative/file.txt": "must be an absolute path",
        "": "empty name",
        f"{backend.base}/nul\0byte": "NUL or control character",
        f"//{backend.base}/file.txt": "path must start with VO name",
    }
    value = ok(se.putFile({good: str(src), **dict.fromkeys(bad, str(src))}))
    assert value["Successful"] == {good: 4}
    assert set(value["Failed"]) == set(bad)
    for lfn, text in bad.items():
        assert text in value["Failed"][lfn], (lfn, value["Failed"][lfn])
    for method in ("exists", "getFileMetadata", "removeFile", "createDirectory"):
        value = ok(getattr(se, method)(list(bad)))
        assert set(value["Failed"]) == set(bad) and not value["Successful"], method
    if backend.local_root is not None:
        names = {p.name for p in backend.local_root.rglob("*")}
        assert "escape.txt" not in names and "file.txt" not in names


def test_large_file_streams(backend: Backend) -> None:
    """A file above the S3 multipart threshold (5 MiB in these tests); content and checksum kept."""
    se = backend.se
    src = backend.tmp / "big.bin"
    block = os.urandom(1024 * 1024)
    with src.open("wb") as fh:
        for _ in range(12):
            fh.write(block)
    expected = adler(block * 12)
    lfn = backend.lfn("big.bin")
    assert ok(se.putFile({lfn: str(src)})) == {"Failed": {}, "Successful": {lfn: 12 * 1024 * 1024}}
    assert ok(se.getFileMetadata(lfn))["Successful"][lfn]["Checksum"] == expected
    out = backend.tmp / "out"
    out.mkdir()
    ok(se.getFile(lfn, localPath=str(out)))
    assert (out / "big.bin").stat().st_size == 12 * 1024 * 1024
    assert adler((out / "big.bin").read_bytes()) == expected


def test_get_url(backend: Backend) -> None:
    se = backend.se
    lfn = backend.lfn("u.txt")
    url = ok(se.getURL(lfn))["Successful"][lfn]
    assert url.endswith(lfn.lstrip("/"))
    params = ok(se.getStorageParameters(protocolSection="Main"))
    assert params["PluginName"] == backend.plugin.split("-")[0]  # XROOT-GSI: XROOT


def test_environment_is_never_written(backend: Backend) -> None:
    """Credentials travel per call: no plugin touches os.environ."""
    before = dict(os.environ)
    se = backend.se
    lfn = backend.lfn("env.txt")
    ok(se.putFile({lfn: str(write(backend.tmp / "env.txt", b"env"))}))
    ok(se.getFileMetadata(lfn))
    ok(se.removeFile(lfn))
    assert dict(os.environ) == before
