"""``LocalSource``: a putFile source whose adler32 is already known (and which the caller
may give away) is stored without reading it again -- File (rename or verified copy),
S3 (checksum metadata from the source) and XROOT (preset end-to-end checksum)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest

from seproxy import localfs
from seproxy.localfs import LocalSource, get_checksum_xattr
from seproxy.storage import StorageElement
from seproxy.storage.plugins import s3 as s3_plugin
from tests.storage.helpers import file_section, make_config, se_tree

LFN = "/dirac/ls/f.bin"


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def make_se(name: str, plugin: str, section: dict, protocol: str) -> StorageElement:
    tree = se_tree(name, {plugin: section}, AccessProtocols=protocol, WriteProtocols=protocol)
    return StorageElement(name, config=make_config(tree))


def no_reads(*_args: object, **_kwargs: object) -> str:
    raise AssertionError("the source was read for its checksum")


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(300_001)
    path = tmp_path / "cache" / "f.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


def test_file_consumable_source_is_renamed_in(tmp_path: Path, source) -> None:
    path, data = source
    root = tmp_path / "se"
    se = make_se("SE-F", "File", file_section(str(root)), "file")
    inode = path.stat().st_ino
    res = se.putFile({LFN: LocalSource(str(path), adler(data), consumable=True)})
    assert res["Value"]["Successful"] == {LFN: len(data)}, res
    stored = root / "dirac/ls/f.bin"
    assert stored.stat().st_ino == inode  # the same file: moved, not copied
    assert not path.exists()
    assert stored.read_bytes() == data
    assert get_checksum_xattr(str(stored)) == adler(data)
    assert se.getFileMetadata(LFN)["Value"]["Successful"][LFN]["Checksum"] == adler(data)


def test_file_move_with_wrong_size_touches_nothing(tmp_path: Path, source) -> None:
    path, data = source
    root = tmp_path / "se"
    se = make_se("SE-F", "File", file_section(str(root)), "file")
    res = se.putFile({LFN: LocalSource(str(path), adler(data), consumable=True)}, len(data) + 1)
    assert res["Value"]["Failed"][LFN] == (
        f"Source and destination file sizes do not match ({len(data) + 1} vs {len(data)})."
    )
    assert path.read_bytes() == data
    assert not (root / "dirac/ls/f.bin").exists()


def test_file_copy_takes_the_known_checksum(tmp_path: Path, source, monkeypatch) -> None:
    path, data = source
    root = tmp_path / "se"
    se = make_se("SE-F", "File", file_section(str(root)), "file")
    monkeypatch.setattr(localfs, "copy_stream", no_reads)  # the bytes never reach Python
    res = se.putFile({LFN: LocalSource(str(path), adler(data))})  # not consumable: copied
    assert res["Value"]["Successful"] == {LFN: len(data)}, res
    stored = root / "dirac/ls/f.bin"
    assert stored.read_bytes() == data
    assert stored.stat().st_ino != path.stat().st_ino
    assert path.read_bytes() == data  # kept: the caller did not give it away
    assert get_checksum_xattr(str(stored)) == adler(data)
    # a wrong size still fails before the rename: nothing under the final name
    stored.unlink()
    res = se.putFile({LFN: LocalSource(str(path), adler(data))}, len(data) - 1)
    assert LFN in res["Value"]["Failed"]
    assert not stored.exists() and not list(stored.parent.iterdir())


def test_s3_takes_the_checksum_from_the_source(moto_s3, source, monkeypatch) -> None:
    path, data = source
    bucket = moto_s3.create_bucket("local-source")
    se = make_se("SE-S3", "S3", moto_s3.section(bucket), "s3")
    monkeypatch.setattr(s3_plugin, "file_adler32", no_reads)
    res = se.putFile({LFN: LocalSource(str(path), adler(data), consumable=True)})
    assert res["Value"]["Successful"] == {LFN: len(data)}, res
    head = moto_s3.client().head_object(Bucket=bucket, Key=LFN.lstrip("/"))
    assert head["Metadata"]["checksum"] == adler(data)


def test_xroot_presets_the_source_checksum(xrootd_server, source) -> None:
    path, data = source
    se = make_se("SE-X", "XROOT", xrootd_server.section("/ls", Timeout="10"), "root")
    # a wrong preset fails the end-to-end check: the copy used it instead of reading
    res = se.putFile({LFN: LocalSource(str(path), "0badc0de")})
    reason = res["Value"]["Failed"][LFN]
    assert "CheckSum error" in reason and LFN not in res["Value"]["Successful"], reason
    assert not (xrootd_server.root / "ls/dirac/ls/f.bin").exists()
    res = se.putFile({LFN: LocalSource(str(path), adler(data))})
    assert res["Value"]["Successful"] == {LFN: len(data)}, res
    assert (xrootd_server.root / "ls/dirac/ls/f.bin").read_bytes() == data
