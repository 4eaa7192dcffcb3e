"""Frame parser and writers (PROTOCOL.md 2)."""

from __future__ import annotations

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import codec, framing
from seproxy.rpc.wire.framing import Frame, FrameParser, KeepAlive

PING = b'dka53:{"OK": true, "Value": {"id": "abc0", "kaping": true}}'
ACK = b"18:ds2:OKb1s5:Valuene"


def events(parser: FrameParser) -> list:
    out = []
    while (event := parser.next_event()) is not None:
        out.append(event)
    return out


def test_byte_by_byte_feeding_and_leftovers() -> None:
    stream = ACK + PING + b"0:" + ACK + b"5:ab"
    parser = FrameParser()
    got: list = []
    for i in range(len(stream)):
        parser.feed(stream[i:i + 1])
        got.extend(events(parser))
    assert got == [Frame(ACK[3:]), KeepAlive(PING[6:]), Frame(b""), Frame(ACK[3:])]
    assert parser.buffered == 2 and parser.bytes_needed == 3 and not parser.at_boundary
    parser.feed(b"cde1")
    assert events(parser) == [Frame(b"abcde")]
    assert parser.buffered == 1 and parser.bytes_needed == 0


def test_several_frames_in_one_feed() -> None:
    parser = FrameParser()
    parser.feed(ACK * 3 + PING)
    assert events(parser) == [Frame(ACK[3:])] * 3 + [KeepAlive(PING[6:])]
    assert parser.at_boundary


def test_dka_only_at_frame_boundary() -> None:
    payload = b"dka5:hello"
    parser = FrameParser()
    parser.feed(framing.encode_frame(payload) + b"3:dka")
    assert events(parser) == [Frame(payload), Frame(b"dka")]


def test_partial_dka_prefix_waits() -> None:
    parser = FrameParser()
    parser.feed(b"d")
    assert parser.next_event() is None
    parser.feed(b"k")
    assert parser.next_event() is None
    parser.feed(b"a2:hi")
    assert parser.next_event() == KeepAlive(b"hi")


@pytest.mark.parametrize(("data", "message"), [
    (b"99999999999999999999:", "Frame of 99999999999999999999 bytes exceeds the maximum frame size"),
    (b"999999999999999999999", "more than 20 digits"),
    (b"12a:", "non-digit byte b'a'"),
    (b"+5:hello", "non-digit byte b'+'"),
    (b" 5:hello", "non-digit byte b' '"),
    (b"5_0:", "non-digit byte b'_'"),
    (b"-1:", "non-digit byte b'-'"),
    (b":abc", "empty (':' without digits)"),
    (b"dka:x", "empty (':' without digits)"),
    (b"dkb5:hello", "Invalid frame start b'dkb'"),
    (b"dx", "Invalid frame start b'dx'"),
    (b"{\"OK\": true}", "non-digit byte b'{'"),
])
def test_bad_headers(data: bytes, message: str) -> None:
    parser = FrameParser()
    parser.feed(data)
    with pytest.raises(ProtocolError) as info:
        parser.next_event()
    assert message in str(info.value)
    # the parser stays failed
    with pytest.raises(ProtocolError):
        parser.feed(b"1:x")
    with pytest.raises(ProtocolError):
        parser.next_event()


def test_oversized_frame_refused_before_its_body() -> None:
    parser = FrameParser(max_frame_size=1000)
    parser.feed(b"1000:")
    assert parser.next_event() is None and parser.bytes_needed == 1000
    parser = FrameParser(max_frame_size=1000)
    parser.feed(b"1001:")  # no body byte sent yet
    with pytest.raises(ProtocolError, match="Frame of 1001 bytes exceeds the maximum frame size of 1000 bytes"):
        parser.next_event()
    parser = FrameParser(max_frame_size=1000)
    parser.feed(b"10000")  # even before the ':' arrives
    with pytest.raises(ProtocolError, match="Frame of 10000 bytes exceeds"):
        parser.next_event()


def test_writers() -> None:
    assert framing.frame_header(18) == b"18:"
    assert framing.frame_header(0, keepalive=True) == b"dka0:"
    big = bytes(100_000)
    parts = framing.frame_parts([b"ab", memoryview(big), bytearray(b"c")])
    assert parts[0] == b"100003:" and parts[2].obj is big
    single = framing.frame_parts(big)
    assert single[0] == b"100000:" and single[1] is big
    wide = memoryview(bytearray(16)).cast("Q")
    assert framing.frame_parts(wide)[0] == b"16:"
    assert framing.encode_frame(b"x", keepalive=True) == b"dka1:x"
    parser = FrameParser()
    for part in parts:
        parser.feed(part)
    assert parser.next_event() == Frame(b"ab" + big + b"c")


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_keepalive_roundtrip(encoding: str) -> None:
    payload = framing.keepalive_payload("abc0", True, encoding)
    assert framing.parse_keepalive(codec.decode(payload)) == ("abc0", True)
    if encoding == "json":
        assert framing.encode_frame(payload, keepalive=True) == PING
    pong = framing.keepalive_payload("abc0", False, encoding)
    assert framing.parse_keepalive(codec.decode(pong)) == ("abc0", False)


@pytest.mark.parametrize(("value", "message"), [
    ({"OK": True, "Value": {"kaping": True}}, "Invalid keep alive, missing id"),
    ({"OK": True, "Value": {"id": "x"}}, "Invalid keep alive, missing kaping"),
    ({"OK": False, "Message": "x"}, "missing id"),
    ([1], "missing id"),
    ({"OK": True, "Value": "id"}, "missing id"),
])
def test_invalid_keepalive(value: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        framing.parse_keepalive(value)


def test_whole_frame_fast_path_only_for_one_exact_small_frame():
    parser = FrameParser(max_frame_size=100)

    def whole(data: bytes, below: int = 50) -> bytes | None:
        return parser.whole_frame(bytearray(data), len(data), below)

    assert whole(b"4:ping") == b"ping"
    assert whole(b"0:") == b""
    for data in (b"4:pin", b"4:pingX", b"4:ping2:ok", b"dka4:ping", b"x4:ping", b":ping",
                 b"4 :ping", b"", b"60:" + b"a" * 60):
        assert whole(data) is None, data
    assert whole(b"4:ping", below=4) is None           # not smaller than ``below``
    assert FrameParser(max_frame_size=3).whole_frame(bytearray(b"4:ping"), 6, 50) is None
    parser.feed(b"4:pi")                                 # not at a frame boundary
    assert whole(b"4:ping") is None
