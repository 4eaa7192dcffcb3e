"""Real DIRAC 9 ``TransferClient`` (PyPI DIRAC in its own venv) against a seproxy service.

The service runs :mod:`tests.transfer.TransferTestHandler` on 127.0.0.1; DIRAC's
client runs in a subprocess (tests/fixtures/dirac.py). Each test batches its DIRAC
calls into one runner process.
"""

from __future__ import annotations

import os
import time

import pytest

from seproxy.transfer import bulk
from tests.transfer.files import MIB, md5_of, write_random

pytestmark = pytest.mark.interop

SIZES = [0, 1, MIB - 1, MIB, MIB + 1]






def leftovers(root):
    return [os.path.join(d, f) for d, _s, files in os.walk(root) for f in files if ".part-" in f]


def wait_no_leftovers(root, timeout=20.0):
    deadline = time.monotonic() + timeout
    while leftovers(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    return leftovers(root)


@pytest.mark.parametrize("protocol", ["dip", "dips"])
@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_size_battery_round_trip(dirac9_client, seproxy_services, tmp_path, encoding, protocol):
    round_trips(dirac9_client, seproxy_services(encoding, protocol=protocol), tmp_path, encoding,
                SIZES)


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_300mib_round_trip(dirac9_client, seproxy_services, tmp_path, encoding):
    round_trips(dirac9_client, seproxy_services(encoding, protocol="dips"), tmp_path, encoding,
                [300 * MIB])


def round_trips(dirac9_client, service, tmp_path, encoding, sizes):
    """DIRAC sendFile then receiveFile of each size; MD5 identical on both sides."""
    calls, expected = [], {}
    for size in sizes:
        src = tmp_path / f"src-{size}"
        expected[size] = write_random(src, size)
        file_id = f"battery/{encoding}-{size}.bin"
        calls.append({"transfer": service.url, "method": "sendFile", "args": [str(src), file_id]})
        calls.append({"transfer": service.url, "method": "receiveFile",
                      "args": [str(tmp_path / f"back-{size}"), file_id]})
    outcomes = dirac9_client.with_(encoding=encoding).run(*calls, timeout=600)
    for index, size in enumerate(sizes):
        sent, received = outcomes[2 * index].unwrap(), outcomes[2 * index + 1].unwrap()
        assert sent == {"OK": True, "Value": None}, size
        assert received == {"OK": True, "Value": None}, size
        assert md5_of(service.storage / "battery" / f"{encoding}-{size}.bin") == expected[size]
        assert md5_of(tmp_path / f"back-{size}") == expected[size]
        (tmp_path / f"src-{size}").unlink()
        (tmp_path / f"back-{size}").unlink()
    assert not leftovers(service.storage)


def test_bulk_tree_round_trip(dirac9_client, seproxy_services, tmp_path):
    service = seproxy_services("json", protocol="dips")
    tree = tmp_path / "tree"
    (tree / "sub" / "deep").mkdir(parents=True)
    (tree / "a.txt").write_bytes(b"alpha")
    (tree / "sub" / "b.bin").write_bytes(os.urandom(2 * MIB + 5))
    (tree / "sub" / "deep" / "c").write_bytes(b"")
    dest = tmp_path / "dest"
    dest.mkdir()
    sent, received, listed = dirac9_client.run(
        {"transfer": service.url, "method": "sendBulk", "args": [[str(tree)], "bulks/one"]},
        {"transfer": service.url, "method": "receiveBulk", "args": [str(dest), "bulks/one"]},
        {"transfer": service.url, "method": "listBulk", "args": ["bulks/one"]},
    )
    assert sent.unwrap() == {"OK": True, "Value": None}
    assert received.unwrap() == {"OK": True, "Value": None}
    for rel in ("a.txt", "sub/b.bin", "sub/deep/c"):
        assert (dest / "tree" / rel).read_bytes() == (tree / rel).read_bytes()
    assert listed.unwrap()["Message"] == "This server does no allow bulk listing"


def test_errors_and_limits(dirac9_client, seproxy_services, tmp_path):
    service = seproxy_services("dencode", max_file_size=MIB)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"hello world")
    write_random(big, 3 * MIB)
    url = service.url
    outcomes = dirac9_client.with_(encoding="dencode").run(
        {"transfer": url, "method": "sendFile", "args": [str(small), "strict-crc", "NoCheckSum"]},
        {"transfer": url, "method": "sendFile", "args": [str(big), "too-big.bin"]},
        {"transfer": url, "method": "sendFile", "args": [str(big), "early-error-1"]},
        {"transfer": url, "method": "sendFile", "args": [str(small), "early-ok-1"]},
        {"transfer": url, "method": "sendFile", "args": [str(small), "raise-1"]},
        {"transfer": url, "method": "receiveFile", "args": [str(tmp_path / "m"), "missing.txt"]},
        {"transfer": url, "method": "receiveFile", "args": [str(tmp_path / "a"), "abort-now"]},
        {"transfer": url, "method": "sendFile", "args": [str(small), "ok-after-errors"]},
    )
    crc, too_big, early_error, early_ok, raised, missing, aborted, after = [o.unwrap() for o in outcomes]
    assert crc["Message"] == "Error in the file CRC"
    assert too_big["Message"] == "Exceeded maximum file size"
    assert early_error["Message"] == "Not enough disk space"
    assert early_ok["Message"] == "Incomplete transfer"
    assert raised["Message"] == "Server error while serving fromClient: RuntimeError('boom')"
    assert missing["Message"] == "File missing.txt does not exist"
    assert aborted == {"OK": True, "Value": "aborted"}
    assert after == {"OK": True, "Value": None}
    stored = set(os.listdir(service.storage))
    assert "strict-crc" not in stored and "too-big.bin" not in stored
    assert "ok-after-errors" in stored
    assert not wait_no_leftovers(service.storage)


DISCONNECT = """
from DIRAC import S_OK
from DIRAC.Core.DISET.TransferClient import TransferClient
url, file_id = args
client = TransferClient(url)
trid, transport = client._sendTransferHeader("FromClient", (file_id, "", 3 * 1048576))["Value"]
transport.sendData(S_OK([True, b"x" * 1048576]))
ack = transport.receiveData()
client._disconnect(trid)
result = ack
"""


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_client_disconnects_mid_stream(dirac9_client, seproxy_services, tmp_path, encoding):
    service = seproxy_services(encoding, protocol="dips")
    small = tmp_path / "small"
    small.write_bytes(b"still serving")
    client = dirac9_client.with_(encoding=encoding)
    ack, = client.run({"exec": DISCONNECT, "args": [service.url, "vanished.bin"]})
    assert ack.unwrap() == {"OK": True, "Value": None}       # the server was streaming
    assert not wait_no_leftovers(service.storage)            # and cleaned up its partial file
    assert not (service.storage / "vanished.bin").exists()
    after, = client.run({"transfer": service.url, "method": "sendFile",
                         "args": [str(small), "after-vanish.bin"]})
    assert after.unwrap() == {"OK": True, "Value": None}
    assert (service.storage / "after-vanish.bin").read_bytes() == b"still serving"


EVIL_TAR = """
import io, tarfile
from DIRAC.Core.DISET.TransferClient import TransferClient
from DIRAC.Core.DISET.private.FileHelper import FileHelper
url, bulk_id, name = args
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
    for member in ("harmless.txt", name):
        info = tarfile.TarInfo(member)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
client = TransferClient(url)
trid, transport = client._sendTransferHeader("BulkFromClient", (bulk_id, "", -1))["Value"]
sent = FileHelper(transport).DataSourceToNetwork(io.BytesIO(buf.getvalue()))
result = transport.receiveData() if sent["OK"] else sent
client._disconnect(trid)
"""


@pytest.mark.parametrize("name", ["../evil", "/tmp/seproxy-absolute-evil"])
def test_evil_tar_refused(dirac9_client, seproxy_services, name):
    service = seproxy_services("json")
    outcome, = dirac9_client.run({"exec": EVIL_TAR, "args": [service.url, "evil/x.tar.bz2", name]})
    result = outcome.unwrap()
    assert not result["OK"]
    assert result["Message"].startswith("Error while extracting bulk: refused member")
    assert name in result["Message"]
    assert not (service.storage / "evil" / "evil").exists()
    assert not (service.storage / "evil" / "x" / "harmless.txt").exists()
    assert not os.path.exists("/tmp/seproxy-absolute-evil")
    assert not [p for p in os.listdir(service.storage / "evil" / "x")
                if p.startswith(bulk.STAGING_PREFIX)]
