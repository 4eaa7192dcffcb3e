"""The sans-IO stream machines (seproxy.transfer.stream): DIRAC's rules, PROTOCOL.md 6.3."""

from __future__ import annotations

import hashlib
import zlib

import pytest

from seproxy.errors import ProtocolError
from seproxy.transfer import stream
from seproxy.transfer.stream import (
    Aborted,
    Acked,
    Data,
    EndOfFile,
    PeerError,
    SizeExceeded,
    StreamReceiver,
    StreamSender,
)

ACK = {"OK": True, "Value": None}


def pump(sender: StreamSender, receiver: StreamReceiver, chunks: list[bytes]) -> tuple[list, bytes]:
    """Drive both machines over a perfect in-memory link; returns (receiver events, data)."""
    events, data = [], b""
    for chunk in chunks:
        assert sender.can_send
        sender.chunk_sent(chunk)
        event, replies = receiver.handle(stream.chunk_message(chunk))
        events.append(event)
        if isinstance(event, Data):
            receiver.absorb(event.data)
            data += bytes(event.data)
        for reply in replies:
            sender.handle_reply(reply)
    event, replies = receiver.handle(sender.eof_message())
    assert replies == []                      # no ack after EOF
    events.append(event)
    return events, data


@pytest.mark.parametrize("chunks", [[], [b"x"], [b"hello ", b"world"], [b"\x00\xff" * 1000] * 3])
def test_round_trip_md5(chunks):
    sender, receiver = StreamSender(), StreamReceiver()
    events, data = pump(sender, receiver, chunks)
    assert data == b"".join(chunks)
    assert events[-1] == EndOfFile(True)
    assert receiver.finished and receiver.eof and sender.finished
    assert sender.eof_message()["Value"] == [False, hashlib.md5(data).hexdigest()]


def test_eof_message_is_dirac_shape():
    sender = StreamSender()
    sender.chunk_sent(b"hello world")
    assert sender.eof_message() == {"OK": True, "Value": [False, "5eb63bbbe01eeed093cb22bb8f5acdc3"]}
    assert StreamSender().eof_message()["Value"][1] == "d41d8cd98f00b204e9800998ecf8427e"


def test_crc_mismatch_is_dirac_message():
    receiver = StreamReceiver()
    receiver.absorb(receiver.handle(stream.chunk_message(b"hello world"))[0].data)
    event, replies = receiver.handle({"OK": True, "Value": [False, "0" * 32]})
    assert event == EndOfFile(False, "Error in the file CRC")
    assert replies == [] and receiver.finished


def test_no_checksum_sender_sends_md5_of_nothing_and_receiver_skips_check():
    sender = StreamSender(checksum=False)
    sender.chunk_sent(b"hello world")
    eof = sender.eof_message()
    assert eof["Value"][1] == stream.EMPTY_MD5
    receiver = StreamReceiver(checksum=False)
    receiver.absorb(receiver.handle(stream.chunk_message(b"hello world"))[0].data)
    assert receiver.handle(eof)[0] == EndOfFile(True)
    # a checking receiver (DIRAC's StorageElementProxy) rejects the same stream
    checking = StreamReceiver()
    checking.absorb(checking.handle(stream.chunk_message(b"hello world"))[0].data)
    assert checking.handle(eof)[0] == EndOfFile(False, stream.MSG_CRC)


def test_dencode_str_chunk_back_to_bytes():
    raw = b"\xff\xfe\x00abc"
    as_str = raw.decode("utf-8", "surrogateescape")
    receiver = StreamReceiver()
    event, replies = receiver.handle({"OK": True, "Value": [True, as_str]})
    assert bytes(event.data) == raw and replies == [ACK]
    receiver.absorb(event.data)
    assert receiver.handle({"OK": True, "Value": [False, hashlib.md5(raw).hexdigest()]})[0].ok


def test_max_size_ack_then_error_like_dirac():
    receiver = StreamReceiver(max_size=10)
    event, replies = receiver.handle_chunk(b"x" * 10)
    assert event == Data(b"x" * 10) and replies == [ACK]
    event, replies = receiver.handle_chunk(b"y")
    assert event == SizeExceeded(10)
    assert replies == [ACK, {"OK": False, "Errno": 0, "Message": "Exceeded maximum file size"}]
    assert stream.MSG_EXCEEDED_LOCAL.format(10) == "Received file exceeded maximum size of 10 bytes"
    assert receiver.finished


def test_receiver_abort_from_sender_side():
    receiver = StreamReceiver()
    event, replies = receiver.handle({"OK": True, "Value": [False, ""], "AbortTransfer": True})
    assert event == Aborted() and replies == [ACK] and receiver.finished


def test_sender_gets_abort_ack_and_stops():
    sender = StreamSender()
    sender.chunk_sent(b"abc")
    assert not sender.can_send
    assert sender.handle_reply({"OK": True, "Value": None, "AbortTransfer": True}) == Aborted()
    assert sender.stopped and sender.finished and not sender.can_send


def test_errors_either_way():
    receiver = StreamReceiver()
    error = {"OK": False, "Errno": 0, "Message": "disk full"}
    assert receiver.handle(error) == (PeerError(error), [])
    sender = StreamSender()
    sender.chunk_sent(b"a")
    assert sender.handle_reply(error) == PeerError(error)
    assert sender.stopped
    assert StreamSender().error_message("boom") == {"OK": False, "Errno": 0, "Message": "boom"}


def test_window_counts_in_flight():
    sender = StreamSender(window=3)
    for _ in range(3):
        assert sender.can_send
        sender.chunk_sent(b"z")
    assert not sender.can_send and sender.in_flight == 3
    assert sender.handle_reply(ACK) == Acked()
    assert sender.can_send and sender.in_flight == 2


def test_adler32_extension():
    sender = StreamSender(checksum=False, adler32=True)
    receiver = StreamReceiver(checksum=False, adler32=True)
    events, data = pump(sender, receiver, [b"abc", b"def" * 1000])
    assert events[-1] == EndOfFile(True)
    eof = sender.eof_message()
    assert eof["Adler32"] == f"{zlib.adler32(data):08x}"
    bad = StreamReceiver(checksum=False, adler32=True)
    bad.absorb(bad.handle_chunk(b"abc")[0].data)
    assert bad.handle({"OK": True, "Value": [False, stream.EMPTY_MD5], "Adler32": "00000000"})[0] == \
        EndOfFile(False, stream.MSG_ADLER_MISMATCH)


def test_adler32_running_value_matches_zlib_across_chunk_shapes():
    # the SIMD implementation (zlib-ng) must give zlib's values, whatever the buffer
    # type, size (SIMD blocks and their tails) and split of the stream into chunks
    assert stream.adler32 is not zlib.adler32, "zlib-ng (a dependency) is not installed"
    data = bytes(range(256)) * 4099 + b"\xff" * 70001
    for split in (3, 31, 5552, 65536, len(data)):
        sums = stream.Checksums(md5=False, adler32=True)
        view = memoryview(bytearray(data))
        for start in range(0, len(data), split):
            sums.update(view[start:start + split])
        assert sums.adler_hex() == f"{zlib.adler32(data):08x}"


@pytest.mark.parametrize("message", [
    None, [1, 2], {"Value": 1}, {"OK": True, "Value": "x"}, {"OK": True, "Value": [True]},
    {"OK": True, "Value": [True, 5]},
])
def test_malformed_messages_raise_protocol_error(message):
    with pytest.raises(ProtocolError):
        StreamReceiver().handle(message)


def test_data_after_end_is_refused():
    receiver = StreamReceiver()
    receiver.handle({"OK": True, "Value": [False, stream.EMPTY_MD5]})
    with pytest.raises(ProtocolError):
        receiver.handle_chunk(b"late")


def test_terminators():
    assert StreamReceiver.is_terminator({"OK": True, "Value": [False, "abc"]})
    assert StreamReceiver.is_terminator(stream.abort_message())
    assert StreamReceiver.is_terminator({"OK": False, "Message": "x"})
    assert not StreamReceiver.is_terminator(stream.chunk_message(b"a"))
