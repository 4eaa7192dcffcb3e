"""uploadFile costs one copy: the adler32 computed while the bytes arrived travels with the
staged file to the storage plugin and the catalogue (no second read), and a File SE on the
cache's filesystem takes the file by rename."""

from __future__ import annotations

import os

from seproxy import localfs
from seproxy.handler import catalog
from seproxy.localfs import get_checksum_xattr
from tests.handler.conftest import SE


def test_upload_file_reads_nothing_again_and_renames_into_a_file_se(se_proxy, tmp_path, monkeypatch):
    data = os.urandom(5 * 1024 * 1024 + 3)
    local = tmp_path / "one.bin"
    local.write_bytes(data)
    expected = localfs.file_adler32(local)
    lfn = "/dirac/user/t/one.bin"
    sent = se_proxy.transfer().sendFile(str(local), "putFile/one.bin")
    assert sent["OK"], sent
    (staged,) = (se_proxy.base / "ns").rglob("putFile/one.bin")
    assert get_checksum_xattr(str(staged)) == expected  # computed as the bytes arrived
    inode = staged.stat().st_ino

    def no_reads(*_args, **_kwargs):
        raise AssertionError("uploadFile read the staged file again")

    monkeypatch.setattr(catalog, "adler32_file", no_reads)
    monkeypatch.setattr(localfs, "file_adler32", no_reads)
    up = se_proxy.rpc().uploadFile(SE, lfn)
    assert up["OK"], up
    assert up["Value"] == len(data)
    stored = se_proxy.storage / "dirac/user/t/one.bin"
    assert stored.stat().st_ino == inode  # the same file, renamed: no copy
    assert stored.read_bytes() == data
    assert get_checksum_xattr(str(stored)) == expected
    assert se_proxy.state.catalogue.metadata(lfn)["Checksum"] == expected
    assert not list((se_proxy.base / "ns").rglob("one.bin"))
