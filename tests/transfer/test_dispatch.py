"""serve_transfer in a running service: header answers, negotiation, authorisation."""

from __future__ import annotations

import pytest

from seproxy.rpc.transport import connect
from seproxy.transfer import extension
from tests.transfer.conftest import SE_NAME, SeproxyTransferService

SECTION = "/Systems/DataManagement/Services/StorageElement"


@pytest.fixture(scope="module")
def restricted(tmp_path_factory):
    service = SeproxyTransferService(tmp_path_factory.mktemp("restricted"), "json", extra=(
        f"{SECTION}/Authorization/FileTransfer/FromClient=CSAdministrator",
        f"{SECTION}/Authorization/FileTransfer/Default=NormalUser",
        f"{SECTION}/Authorization/FileTransfer/ToClient=all",
        f"{SECTION}/TransferStreamExtension=no",
    ))
    yield service
    service.stop()


def propose(service, direction, header):
    transport = connect("dip", "127.0.0.1", service.port, cfg=None, timeout=10)
    transport.settimeout(30)
    proposal = {"OK": True, "Value": [[SE_NAME, "None", "dirac"], ["FileTransfer", direction], "", "9.1.22"]}
    transport.send_data(proposal, "json")
    answer = transport.receive_data()
    if answer.get("OK") and header is not None:
        transport.send_data({"OK": True, "Value": header}, "json")
        return transport, transport.receive_data()
    return transport, answer


@pytest.mark.parametrize("direction", ["FromClient", "BulkFromClient", "ListBulk"])
def test_direction_and_default_authorisation(restricted, direction):
    transport, answer = propose(restricted, direction, None)
    transport.close()
    assert answer["Message"] == "Unauthorized query ( 1111 : Unauthorized query)"
    assert answer["Errno"] == 1111


def test_open_direction_still_served(restricted):
    transport, answer = propose(restricted, "ToClient", ["missing", "", extension.make_offer()])
    try:
        assert answer == {"OK": True, "Value": "Accepted"}   # extension switched off: DIRAC answer
        assert transport.receive_data()["Value"] == [False, "d41d8cd98f00b204e9800998ecf8427e"]
        assert transport.receive_data()["Message"] == "File missing does not exist"
    finally:
        transport.close()


def test_offer_is_answered_and_removed(seproxy_services):
    service = seproxy_services("json")
    (service.storage / "neg.txt").write_bytes(b"negotiated")
    offer = extension.make_offer(window=4, chunk=1 << 30, checksums=["sha1", "adler32"],
                                 binary=False)
    transport, answer = propose(service, "ToClient", ["neg.txt", "", offer])
    try:
        assert answer["Value"] == "Accepted"
        assert answer[extension.ANSWER_KEY] == {"window": 4, "chunk": extension.MAX_CHUNK,
                                                "checksum": "adler32"}
        chunk = transport.receive_data()
        assert chunk["Value"][1] == b"negotiated"
        transport.send_data({"OK": True, "Value": None}, "json")
        eof = transport.receive_data()
        assert eof["Value"] == [False, "d41d8cd98f00b204e9800998ecf8427e"]
        assert eof["Adler32"] == "16f70425"              # adler32(b"negotiated")
        assert transport.receive_data() == {"OK": True, "Value": None}
    finally:
        transport.close()


def test_binary_chunks_on_a_json_connection(seproxy_services):
    """Offered and answered ``binary``: data chunks are DEncode chunk frames, the rest JSON."""
    service = seproxy_services("json")
    (service.storage / "bin.txt").write_bytes(b"\x00binary\xff")
    transport, answer = propose(service, "ToClient", ["bin.txt", "", extension.make_offer(window=2)])
    try:
        assert answer[extension.ANSWER_KEY] == {"window": 2, "chunk": extension.DEFAULT_CHUNK,
                                                "checksum": "adler32", "binary": True}
        assert transport.receive_frame() == b"ds2:OKb1s5:Valuelb1s8:\x00binary\xffee"
        eof = transport.receive_frame()
        assert eof.startswith(b'{"OK": true, "Value": [false, "d41d8cd98f00b204e9800998ecf8427e"]')
        transport.send_data({"OK": True, "Value": None}, "json")
        assert transport.receive_data() == {"OK": True, "Value": None}
    finally:
        transport.close()


def test_short_header(seproxy_services):
    transport, answer = propose(seproxy_services("json"), "FromClient", ["only-an-id"])
    try:
        assert answer == {"OK": True, "Value": "Accepted"}
        assert transport.receive_data()["Message"] == \
            "Server error while serving fromClient: IndexError('tuple index out of range')"
    finally:
        transport.close()


def test_bad_header_closes_with_error(seproxy_services):
    transport, answer = propose(seproxy_services("json"), "FromClient", "not a list")
    try:
        assert not answer["OK"] and "Error while receiving file description" in answer["Message"]
    finally:
        transport.close()


def test_accept_bounds():
    options, answer = extension.accept({"seproxy-stream": 1, "window": 10_000, "chunk": 5,
                                        "checksums": "md5"})
    assert answer == {"window": extension.MAX_WINDOW, "chunk": extension.MIN_CHUNK, "checksum": "md5"}
    assert options.window == extension.MAX_WINDOW and not options.adler32 and options.md5
    assert extension.accept(None) == (extension.DIRAC_OPTIONS, None)
    assert extension.accept({"seproxy-stream": 2}) == (extension.DIRAC_OPTIONS, None)
    assert extension.split_header(["a", "", 3, {"x": 1}], 3) == (["a", "", 3, {"x": 1}], None)
