"""seproxy's TransferClient against a real DIRAC 9 ``DataManagement/StorageElement`` (dips).

The client offers the seproxy stream extension; DIRAC ignores the offer, so these
also show that the offer falls back to DIRAC's exact stream.
"""

from __future__ import annotations

import os

import pytest

from seproxy.config import Config
from seproxy.returnvalues import S_OK
from seproxy.transfer.client import TransferClient
from seproxy.transfer.filehelper import FileHelper
from tests.transfer.files import MIB, md5_of, write_random

pytestmark = pytest.mark.interop



@pytest.fixture(scope="module")
def client_factory(pki):
    cfg = Config.load(use_default=True, overrides=[f"/DIRAC/Security/CALocation={pki.ca_dir}"])
    proxy = str(pki.proxy("dirac_user"))

    def make(service, encoding="json", **kwargs):
        return TransferClient(service.url, encoding=encoding, config=cfg, proxyLocation=proxy,
                              useCertificates=False,
                              retryDelay=0.1, **kwargs)

    return make


@pytest.fixture(scope="module")
def small_se(dirac_services, tmp_path_factory):
    """A DIRAC StorageElement limited to 1 MB (MaxStorageSize is in MB)."""
    base = tmp_path_factory.mktemp("dirac-se-small")
    service = dirac_services.start("se-small", {"DataManagement/StorageElement": {
        "BasePath": base, "MaxStorageSize": 1}}, encoding="dencode")
    service.storage_path = base
    return service






@pytest.mark.parametrize("encoding", ["json", "dencode"])
@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1,
                                  pytest.param(300 * MIB, marks=pytest.mark.slow)])
def test_round_trip(dirac_services, client_factory, tmp_path, encoding, size):
    service = dirac_services.storage_element(encoding=encoding)
    tc = client_factory(service, encoding)
    src = tmp_path / "src"
    write_random(src, size)
    file_id = f"sp/{encoding}-{size}"
    assert tc.sendFile(str(src), file_id) == {"OK": True, "Value": None}
    assert md5_of(service.storage_path / "sp" / f"{encoding}-{size}") == md5_of(src)
    back = tmp_path / "back"
    assert tc.receiveFile(str(back), file_id) == {"OK": True, "Value": None}
    assert md5_of(back) == md5_of(src)


def test_bulk_and_missing(dirac_services, client_factory, tmp_path):
    service = dirac_services.storage_element(encoding="json")
    tc = client_factory(service)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(MIB + 7))
    assert tc.sendBulk([str(tree)], "spbulk") == {"OK": True, "Value": None}
    assert (service.storage_path / "spbulk" / "tree" / "sub" / "b.bin").read_bytes() == \
        (tree / "sub" / "b.bin").read_bytes()
    dest = tmp_path / "dest"
    dest.mkdir()
    assert tc.receiveBulk(str(dest), "spbulk/tree") == {"OK": True, "Value": None}
    assert (dest / "tree" / "sub" / "b.bin").read_bytes() == (tree / "sub" / "b.bin").read_bytes()
    missing = tc.receiveFile(str(tmp_path / "m"), "sp/not-there")
    assert missing["Message"] == "File not-there does not exist"


def test_symlink_out_of_destination_refused(dirac_services, client_factory, tmp_path):
    service = dirac_services.storage_element(encoding="json")
    evil = service.storage_path / "evilbulk"
    evil.mkdir(exist_ok=True)
    (evil / "ok.txt").write_bytes(b"ok")
    if not (evil / "passwd").is_symlink():
        os.symlink("/etc/passwd", evil / "passwd")
    dest = tmp_path / "dest"
    dest.mkdir()
    result = client_factory(service).receiveBulk(str(dest), "evilbulk")
    assert not result["OK"]
    assert result["Message"].startswith("Error while extracting bulk: refused member")
    assert "absolute link" in result["Message"]
    assert os.listdir(dest) == []


def test_crc_mismatch(dirac_services, client_factory):
    service = dirac_services.storage_element(encoding="dencode")
    tc = client_factory(service, "dencode")
    header = tc._sendTransferHeader("FromClient", ("sp/crc", "", 11))
    transport, _options = header["Value"]
    try:
        helper = FileHelper(transport, "dencode")
        assert helper.sendData(b"hello world") == {"OK": True, "Value": None}
        transport.send_data(S_OK([False, "0" * 32]), "dencode")
        assert transport.receive_data()["Message"] == "Error in the file CRC"
    finally:
        transport.close()


def test_early_answer(small_se, client_factory, tmp_path):
    """The size in the header is over the free space: DIRAC answers before reading and
    closes; the client reports DIRAC's answer, not the broken write."""
    tc = client_factory(small_se, "dencode")
    big = tmp_path / "big"
    write_random(big, 3 * MIB)
    assert tc.sendFile(str(big), "big")["Message"] == "Not enough disk space"
    assert not (small_se.storage_path / "big").exists()


@pytest.fixture(scope="module")
def limited_interop(dirac_services, tmp_path_factory):
    """DIRAC serving tests/interop/InteropHandler.py with MaxFileSize = 2.5 MiB (DIRAC bounds each
    frame read by what is left of it, so a smaller limit fails with its read limit first)."""
    storage = tmp_path_factory.mktemp("dirac-interop-limited")
    service = dirac_services.start("interop-limited", {"Test/Interop": {
        "HandlerPath": "InteropHandler.py", "StoragePath": storage, "MaxFileSize": 2 * MIB + MIB // 2,
        "Authorization": {"Default": "authenticated"}}}, encoding="json")
    service.storage_path = storage
    return service


@pytest.mark.parametrize("extension", [True, False])
def test_max_file_size_on_dirac_receiver(limited_interop, client_factory, tmp_path, extension):
    tc = client_factory(limited_interop, "json", stream_extension=extension)
    big = tmp_path / "big"
    write_random(big, 3 * MIB)
    assert tc.sendFile(str(big), "big")["Message"] == "Exceeded maximum file size"
    small = tmp_path / "small"
    small.write_bytes(b"fits")
    assert tc.sendFile(str(small), "small") == {"OK": True, "Value": None}
    assert (limited_interop.storage_path / "small").read_bytes() == b"fits"
