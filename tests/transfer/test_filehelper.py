"""FileHelper over a real loopback TCP connection: DIRAC's stream, byte-exact, both encodings."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from seproxy.transfer.filehelper import FileHelper, StreamOptions
from tests.conftest import load_vectors

MIB = 1024 * 1024
ENCODINGS = ["json", "dencode"]
VECTORS = {v["id"]: bytes.fromhex(v["framed_hex"]) for v in load_vectors("messages.jsonl")}


def helpers(pair, encoding, options=None, checksum=True):
    options = StreamOptions() if options is None else options
    client, server = pair
    sender = FileHelper(client, encoding, checksum, options=options)
    receiver = FileHelper(server, encoding, checksum, options=options)
    receiver.setDirection("fromClient")
    return sender, receiver


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", [0, 1, MIB - 1, MIB, MIB + 1, 3 * MIB + 17])
def test_round_trip_sizes(transport_pair, background, tmp_path, encoding, size):
    data = os.urandom(size)
    src = tmp_path / "src"
    src.write_bytes(data)
    sender, receiver = helpers(transport_pair, encoding)
    sink = io.BytesIO()
    got = background(lambda: receiver.networkToDataSink(sink))
    with open(src, "rb") as fh:
        assert sender.FDToNetwork(fh.fileno()) == {"OK": True, "Value": None}
    assert got.result()["OK"]
    assert sink.getvalue() == data
    assert receiver.getHash() == sender.getHash() == hashlib.md5(data).hexdigest()
    assert receiver.getTransferedBytes() == sender.getTransferedBytes() == size
    assert receiver.finishedTransmission() and receiver.receivedEOF()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_wire_bytes_match_dirac_vectors(transport_pair, background, encoding):
    """The sender's frames are DIRAC's (ft_chunk, ft_eof), the receiver's ack is ft_ack."""
    client, server = transport_pair
    sender = FileHelper(client, encoding)
    job = background(lambda: sender.stringToNetwork(b"hello world"))
    chunk = server.receive_frame()
    assert _framed(chunk) == VECTORS[f"ft_chunk.{encoding}"]
    receiver = FileHelper(server, encoding)
    receiver._send_ack()
    eof = server.receive_frame()
    assert _framed(eof) == VECTORS[f"ft_eof.{encoding}"]
    assert job.result()["OK"]
    # receiving: the ack we send is byte-identical to DIRAC's
    from seproxy.rpc.wire import codec
    assert _framed(codec.encode({"OK": True, "Value": None}, encoding)) == VECTORS[f"ft_ack.{encoding}"]


def _framed(payload: bytes) -> bytes:
    return b"%d:%s" % (len(payload), payload)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_crc_mismatch(transport_pair, background, encoding):
    client, server = transport_pair
    receiver = FileHelper(server, encoding)
    got = background(lambda: receiver.networkToString())
    client.send_frame(VECTORS[f"ft_chunk.{encoding}"].split(b":", 1)[1])
    assert client.receive_data() == {"OK": True, "Value": None}
    client.send_data({"OK": True, "Value": [False, "0" * 32]}, encoding)
    result = got.result()
    assert not result["OK"] and result["Message"] == "Error in the file CRC"
    assert receiver.errorInTransmission()


def test_no_checksum_receiver_accepts_md5_of_nothing(transport_pair, background):
    sender, receiver = helpers(transport_pair, "json", checksum=False)
    got = background(lambda: receiver.networkToString())
    assert sender.stringToNetwork(b"hello world")["OK"]
    assert got.result() == {"OK": True, "Value": b"hello world"}


@pytest.mark.parametrize("options", [StreamOptions(), StreamOptions(chunk_size=256 * 1024, window=4,
                                                                  adler32=True, md5=False)])
def test_max_file_size(transport_pair, background, options):
    sender, receiver = helpers(transport_pair, "dencode", options=options)
    limit = options.chunk_size + 10
    got = background(lambda: receiver.networkToString(maxFileSize=limit))
    sent = sender.stringToNetwork(b"a" * (options.chunk_size * 3))
    assert sent == {"OK": False, "Errno": 0, "Message": "Exceeded maximum file size"}
    result = got.result()
    assert result["Message"] == f"Received file exceeded maximum size of {limit} bytes"
    _assert_in_sync(transport_pair)


def _assert_in_sync(pair):
    """After a stopped stream both ends are at a frame boundary: one more frame goes through."""
    client, server = pair
    server.send_data({"OK": True, "Value": "final"}, "json")
    assert client.receive_data() == {"OK": True, "Value": "final"}


@pytest.mark.parametrize("options", [StreamOptions(), StreamOptions(chunk_size=128 * 1024, window=8)])
def test_mark_as_transferred_while_receiving(transport_pair, background, options):
    sender, receiver = helpers(transport_pair, "json", options=options)

    def server_side():
        first = receiver.receiveData()
        assert first["OK"] and len(first["Value"]) == options.chunk_size
        return receiver.markAsTransferred()

    got = background(server_side)
    result = sender.stringToNetwork(b"q" * (options.chunk_size * 20))
    assert result == {"OK": True, "Value": None}          # DIRAC: an abort is a success
    assert got.result()["OK"] and receiver.finishedTransmission()
    _assert_in_sync(transport_pair)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_mark_as_transferred_while_sending(transport_pair, background, encoding):
    client, server = transport_pair
    server_helper = FileHelper(server, encoding)
    server_helper.setDirection("toClient")
    client_helper = FileHelper(client, encoding)
    sink = io.BytesIO()
    got = background(lambda: client_helper.networkToDataSink(sink))
    assert server_helper.markAsTransferred()["OK"]
    assert got.result()["OK"] and sink.getvalue() == b""
    assert client_helper.receivedEOF()
    _assert_in_sync(transport_pair)


def test_abort_frames_are_dirac_bytes(transport_pair, background):
    client, server = transport_pair
    helper = FileHelper(server, "json")
    helper.setDirection("toClient")
    job = background(helper.markAsTransferred)
    assert _framed(client.receive_frame()) == VECTORS["ft_abort_from_sender_side.json"]
    client.send_data({"OK": True, "Value": None}, "json")
    assert job.result()["OK"]


def test_sender_error_reaches_receiver(transport_pair, background):
    client, server = transport_pair
    receiver = FileHelper(server, "json")
    got = background(lambda: receiver.networkToString())
    assert FileHelper(client, "json").sendError("disk on fire")["OK"]
    assert got.result()["Message"] == "disk on fire"


def test_receiver_error_stops_sender(transport_pair, background):
    client, server = transport_pair

    def server_side():
        server.receive_frame()
        server.send_data({"OK": False, "Errno": 0, "Message": "Not enough disk space"}, "json")

    job = background(server_side)
    result = FileHelper(client, "json").stringToNetwork(b"x" * 10)
    job.result()
    assert result["Message"] == "Not enough disk space"


def test_windowed_sender_stopped_after_its_eof_sends_no_second_terminator(transport_pair, background):
    """A windowed sender whose chunk and EOF are both on the way when the receiver stops
    it has already sent its terminator (the EOF): the receiver drains to it, answers and
    closes, so an extra abort would arrive after the close (a reset, or the sender's
    write failing in place of the answer: test_bad_file_ids_for_upload's flake)."""
    client, server = transport_pair
    options = StreamOptions(chunk_size=128 * 1024, window=8)

    def server_side():
        server.send_data({"OK": False, "Errno": 0, "Message": "Invalid fileID"}, "json")
        frames = [server.receive_data() for _ in range(2)]     # the chunk, then the EOF
        server.send_data({"OK": False, "Errno": 0, "Message": "final"}, "json")
        return frames, server.wait_readable(0.5)

    job = background(server_side)
    result = FileHelper(client, "json", options=options).stringToNetwork(b"payload")
    frames, more = job.result()
    assert result["Message"] == "Invalid fileID"
    assert frames[1]["Value"][0] is False and not frames[1].get("AbortTransfer")
    assert not more, "a second terminator followed the EOF"
    assert client.receive_data()["Message"] == "final"


def test_peer_vanishing_mid_stream(transport_pair, background):
    client, server = transport_pair
    receiver = FileHelper(server, "dencode")
    got = background(lambda: receiver.networkToString())
    client.send_frame(VECTORS["ft_chunk.dencode"].split(b":", 1)[1])
    client.receive_data()
    client.close()
    result = got.result()
    assert not result["OK"] and result["Message"]
    assert not receiver.receivedEOF()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_extension_round_trip(transport_pair, background, tmp_path, encoding):
    options = StreamOptions(chunk_size=512 * 1024, window=6, adler32=True, md5=False)
    data = os.urandom(5 * MIB + 3)
    sender, receiver = helpers(transport_pair, encoding, options=options)
    sink = io.BytesIO()
    got = background(lambda: receiver.networkToDataSink(sink))
    assert sender.DataSourceToNetwork(io.BytesIO(data))["OK"]
    assert got.result()["OK"] and sink.getvalue() == data
    _assert_in_sync(transport_pair)


def test_data_source_without_read(transport_pair):
    helper = FileHelper(transport_pair[0], "json")
    assert "does not have a read method" in helper.DataSourceToNetwork(42)["Message"]
    assert "does not have a write method" in helper.networkToDataSink(42)["Message"]


def test_file_kinds(tmp_path):
    helper = FileHelper()
    assert helper.getFileDescriptor(str(tmp_path / "nope"), "r")["Message"].endswith("can't be opened")
    assert helper.getFileDescriptor(3.5, "r")["Message"] == "3.5 is not a valid file."
    result = helper.getFileDescriptor(7, "r")
    assert result["Value"] == 7 and result["closeAfterUse"] is False
    sink = helper.getDataSink(io.BytesIO())
    assert sink["OK"] and sink["closeAfterUse"] is False


def test_oversized_frame_is_refused_not_buffered(transport_pair, background):
    client, server = transport_pair
    receiver = FileHelper(server, "dencode")
    got = background(lambda: receiver.networkToString())
    junk = b"x" * (3 * MIB)
    try:
        client.send_frame([b"ds2:OKb1s5:Valuelb1s3145728:", junk, b"ee"])   # a 3 MiB chunk frame
    except Exception:  # noqa: BLE001 - the receiver may close first
        pass
    result = got.result()
    assert not result["OK"] and "Read limit exceeded" in result["Message"]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_eof_follows_the_last_ack_in_dirac_stream(transport_pair, background, encoding):
    """Stop-and-wait order on the wire: chunk, ack, chunk, ack, EOF (never EOF before an ack)."""
    client, server = transport_pair
    job = background(lambda: FileHelper(client, encoding).stringToNetwork(b"a" * (MIB + 1)))
    from seproxy.rpc.wire import codec
    assert len(codec.decode_chunk(server.receive_frame())) == MIB
    server.send_data({"OK": True, "Value": None}, encoding)
    assert codec.decode_chunk(server.receive_frame()) == b"a"
    server.settimeout(0.5)
    with pytest.raises(Exception, match="timeout"):
        server.receive_frame()          # nothing more until the ack: the sender waits
    server.settimeout(30)
    server.send_data({"OK": True, "Value": None}, encoding)
    assert codec.decode(server.receive_frame())["Value"][0] is False
    assert job.result()["OK"]
