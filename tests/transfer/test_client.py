"""seproxy's TransferClient against a seproxy service: DIRAC's stream and the extension."""

from __future__ import annotations

import hashlib
import os

import pytest

from seproxy.config import Config
from seproxy.transfer.client import TransferClient, file_size

MIB = 1024 * 1024


def client(service, encoding="json", **kwargs):
    return TransferClient(service.url, encoding=encoding, config=Config.load(use_default=True),
                          retryDelay=0.1, **kwargs)


@pytest.mark.parametrize("extension", [False, True], ids=["dirac-stream", "extension"])
@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_send_receive_sizes(seproxy_services, tmp_path, encoding, extension):
    service = seproxy_services(encoding)
    tc = client(service, encoding, stream_extension=extension, chunk_size=256 * 1024, window=4)
    for size in (0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 5):
        data = os.urandom(size)
        src = tmp_path / f"s{size}"
        src.write_bytes(data)
        progress = []
        file_id = f"client/{encoding}-{extension}-{size}"
        assert tc.sendFile(str(src), file_id, progress=progress.append) == {"OK": True, "Value": None}
        assert (service.storage / file_id).read_bytes() == data
        assert progress == ([] if size == 0 else progress) and (not progress or progress[-1] == size)
        back = tmp_path / f"b{size}"
        assert tc.receiveFile(str(back), file_id) == {"OK": True, "Value": None}
        assert hashlib.md5(back.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()


def test_file_kinds(seproxy_services, tmp_path):
    service = seproxy_services("json")
    tc = client(service)
    src = tmp_path / "src"
    src.write_bytes(b"kinds")
    with open(src, "rb") as fh:                          # file object
        assert tc.sendFile(fh, "kinds-fobj")["OK"]
    fd = os.open(src, os.O_RDONLY)                       # descriptor
    try:
        assert tc.sendFile(fd, "kinds-fd")["OK"]
    finally:
        os.close(fd)
    assert (service.storage / "kinds-fd").read_bytes() == b"kinds"

    class Collector:                                     # any object with write()
        def __init__(self):
            self.parts = []

        def write(self, data):
            self.parts.append(bytes(data))

    sink = Collector()
    assert tc.receiveFile(sink, "kinds-fobj")["OK"]
    assert b"".join(sink.parts) == b"kinds"
    assert tc.sendFile(str(tmp_path / "absent"), "x")["Message"] == f"{tmp_path / 'absent'} can't be opened"
    assert tc.sendFile(2.5, "x")["Message"] == "2.5 is not a valid file."
    assert file_size(str(tmp_path / "absent")) == -1 and file_size(str(src)) == 5


@pytest.mark.parametrize("extension", [False, True], ids=["dirac-stream", "extension"])
def test_failures(seproxy_services, tmp_path, extension):
    service = seproxy_services("dencode", max_file_size=MIB)
    tc = client(service, "dencode", stream_extension=extension, chunk_size=128 * 1024, window=8)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * MIB))
    small = tmp_path / "small"
    small.write_bytes(b"hello world")
    assert tc.sendFile(str(big), "too-big")["Message"] == "Exceeded maximum file size"
    assert tc.sendFile(str(big), "early-error")["Message"] == "Not enough disk space"
    assert tc.sendFile(str(big), "early-ok")["Message"] == "Incomplete transfer"
    assert tc.sendFile(str(big), "abort-after-1") == {"OK": True, "Value": 128 * 1024 if extension else MIB}
    assert tc.sendFile(str(small), "strict-crc", "NoCheckSum")["Message"].startswith("Error in the file CRC")
    assert tc.receiveFile(str(tmp_path / "m"), "missing")["Message"] == "File missing does not exist"
    assert tc.receiveFile(str(tmp_path / "a"), "abort") == {"OK": True, "Value": "aborted"}
    assert tc.sendFile(str(small), "fine") == {"OK": True, "Value": None}
    stored = os.listdir(service.storage)
    assert "too-big" not in stored and "strict-crc" not in stored and "fine" in stored
    assert not [name for name in stored if ".part-" in name]


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("extension", [False, True], ids=["dirac-stream", "extension"])
def test_bulk(seproxy_services, tmp_path, compress, extension):
    service = seproxy_services("json")
    tc = client(service, stream_extension=extension, chunk_size=64 * 1024)
    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "f.bin").write_bytes(os.urandom(200_000))
    (tree / "top.txt").write_bytes(b"top")
    bulk_id = f"bulk-{compress}-{extension}"
    assert tc.sendBulk([str(tree)], bulk_id, compress=compress) == {"OK": True, "Value": None}
    dest = tmp_path / "dest"
    dest.mkdir()
    assert tc.receiveBulk(str(dest), bulk_id, compress=compress) == {"OK": True, "Value": None}
    assert (dest / "tree" / "d" / "f.bin").read_bytes() == (tree / "d" / "f.bin").read_bytes()
    assert tc.listBulk(bulk_id)["Message"] == "This server does no allow bulk listing"
    missing = tc.sendBulk([str(tmp_path / "nope")], "x")
    assert missing["Message"] == f"Some files or directories don't exist :\n\t{tmp_path / 'nope'}"
    assert tc.receiveBulk(str(tmp_path / "nope"), "x")["Message"] == \
        f"{tmp_path / 'nope'} is not a directory for bulk receival"


def test_unknown_service_is_an_error(seproxy_services):
    service = seproxy_services("json")
    tc = TransferClient(service.url.replace("StorageElement", "Nope"), config=Config.load(use_default=True),
                        retryDelay=0.01)
    result = tc.sendFile(__file__, "x")
    assert not result["OK"] and "DataManagement/Nope is not up in this server" in result["Message"]
