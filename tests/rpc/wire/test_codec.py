"""Encoding choice, the mixed decoder and the transfer-chunk fast paths."""

from __future__ import annotations

import os

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import codec, dencode, jencode

VALUE = {"OK": True, "Value": [1, "a"]}


@pytest.mark.parametrize(("env", "expected"), [
    (None, "json"), ("yes", "json"), ("TRUE", "json"), ("True", "json"),
    ("no", "dencode"), ("false", "dencode"), ("1", "dencode"), ("", "dencode"),
])
def test_env_variable_read_per_call(monkeypatch: pytest.MonkeyPatch, env: str | None, expected: str) -> None:
    if env is None:
        monkeypatch.delenv(codec.ENV_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(codec.ENV_VARIABLE, env)
    assert codec.default_encoding() == expected
    module = jencode if expected == "json" else dencode
    assert codec.encode(VALUE) == module.encode(VALUE)


def test_env_change_takes_effect_at_next_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(codec.ENV_VARIABLE, "no")
    assert codec.encode(VALUE).startswith(b"d")
    monkeypatch.setenv(codec.ENV_VARIABLE, "yes")
    assert codec.encode(VALUE).startswith(b"{")


def test_explicit_encoding_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(codec.ENV_VARIABLE, "no")
    assert codec.encode(VALUE, "json") == jencode.encode(VALUE)
    monkeypatch.setenv(codec.ENV_VARIABLE, "yes")
    assert codec.encode(VALUE, "dencode") == dencode.encode(VALUE)
    with pytest.raises(ValueError, match="unknown encoding 'xml'"):
        codec.encode(VALUE, "xml")
    assert os.environ[codec.ENV_VARIABLE] == "yes"


def test_mixed_decoder() -> None:
    assert codec.decode_with_codec(b"ds2:OKb1s5:Valuene") == ({"OK": True, "Value": None}, "dencode")
    assert codec.decode_with_codec(b'{"OK": true, "Value": null}') == ({"OK": True, "Value": None}, "json")
    assert codec.decode_with_codec(b"true") == (True, "json")  # 't' is a DEncode tag, DEncode fails
    assert codec.decode_with_codec(b"null") == (None, "dencode")
    assert codec.decode_with_codec(b"-5") == (-5, "json")


def test_mixed_decoder_errors_say_what_is_wrong() -> None:
    with pytest.raises(ProtocolError, match="Empty payload"):
        codec.decode(b"")
    with pytest.raises(ProtocolError, match=r"^JSON: Expecting property name"):
        codec.decode(b"{")
    with pytest.raises(ProtocolError, match=r"^DEncode: truncated data.*\(and not JSON either: JSON: "):
        codec.decode(b"ds2:OK")
    with pytest.raises(ProtocolError, match="nesting deeper than 200"):
        codec.decode(b"l" * 1000 + b"e" * 1000)
    with pytest.raises(ProtocolError, match="nesting deeper than 200"):
        codec.decode(b"[" * 1000 + b"]" * 1000)
    with pytest.raises(ProtocolError, match="exceeds the maximum of 4"):
        codec.decode(b"li1ee", max_size=4)


@pytest.mark.parametrize("encoding", ["dencode", "json"])
@pytest.mark.parametrize("size", [0, 1, 3, 65536 + 7])
def test_chunk_parts_equal_generic_encoding(encoding: str, size: int) -> None:
    chunk = os.urandom(size)
    parts = codec.encode_chunk_parts(chunk, encoding)
    payload = b"".join(parts)
    assert payload == codec.encode({"OK": True, "Value": [True, chunk]}, encoding)
    assert codec.decode_chunk(payload) == chunk
    assert codec.decode_chunk(bytearray(payload)) == chunk
    assert codec.decode_chunk(memoryview(payload)) == chunk
    decoded = codec.decode(payload)["Value"][1]
    raw = decoded if isinstance(decoded, bytes) else decoded.encode("utf-8", "surrogateescape")
    assert raw == chunk


def test_dencode_chunk_is_not_copied() -> None:
    chunk = os.urandom(1024)
    view = memoryview(chunk)
    assert codec.encode_chunk_parts(chunk, "dencode")[1] is chunk
    parts = codec.encode_chunk_parts(view[10:20], "dencode")
    assert parts[0] == b"ds2:OKb1s5:Valuelb1s10:" and parts[1].obj is chunk
    words = memoryview(bytearray(8)).cast("I")  # 2 items, 8 bytes
    assert codec.encode_chunk_parts(words, "dencode")[0].endswith(b"s8:")


def test_encoding_none_uses_env_for_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(codec.ENV_VARIABLE, "no")
    assert codec.encode_chunk_parts(b"x")[0].startswith(b"ds2")
    monkeypatch.delenv(codec.ENV_VARIABLE)
    assert codec.encode_chunk_parts(b"x")[0].startswith(b"{")


@pytest.mark.parametrize("payload", [
    b"ds2:OKb1s5:Valuelb0s32:5eb63bbbe01eeed093cb22bb8f5acdc3ee",   # EOF message
    b"ds2:OKb1s5:Valuene",                                        # ack
    b"ds2:OKb1s5:Valuelb1s10:abcee",                              # truncated chunk
    b"ds2:OKb1s5:Valuelb1s3:abc",                                 # missing terminator
    b"ds2:OKb1s5:Valuelb1s:abcee",                                # no length
    b"ds2:OKb1s5:Valuelb1s+3:abcee",                              # non-digit length
    b'{"OK": true, "Value": [false, "5eb63bbbe01eeed093cb22bb8f5acdc3"]}',
    b'{"OK": true, "Value": [true, {"__dCls": "b64", "obj": "aGVsbG8=\\n"}]}',  # JSON escape
    b'{"OK": true, "Value": [true, {"__dCls": "b64", "obj": "aGVsbG8"}]}',      # bad padding
    b'{"OK": true, "Value": [true, {"__dCls": "b64", "obj": "}]}',
    b'{"OK": true, "Value": [true, {"__dCls": "b64", "obj": "',
    b"", b"d", b"{",
])
def test_decode_chunk_returns_none_for_other_payloads(payload: bytes) -> None:
    assert codec.decode_chunk(payload) is None


def test_decode_chunk_ignores_trailing_bytes_like_dencode() -> None:
    payload = b"ds2:OKb1s5:Valuelb1s3:abceeXYZ"
    assert codec.decode_chunk(payload) == b"abc"
    assert codec.decode(payload) == {"OK": True, "Value": [True, "abc"]}
