"""Every line of the shared DIRAC vectors: our encoders and decoders give DIRAC's bytes and values."""

from __future__ import annotations

import datetime  # noqa: F401  (value_repr / decoded_repr are evaluated with it in scope)

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import codec, dencode, framing, jencode
from tests.conftest import load_vectors
from tests.rpc.wire.helpers import as_dencode_receives, as_json_receives, same

DENCODE = load_vectors("dencode.jsonl")
JENCODE = load_vectors("jencode.jsonl")
MIXED = load_vectors("mixeddecode.jsonl")
MESSAGES = load_vectors("messages.jsonl")
MODULES = {"dencode": dencode, "jencode": jencode}


def _cases(rows: list[dict], module: str) -> list:
    return [pytest.param(module, row, id=f"{module}-{row['id']}") for row in rows]


ALL = _cases(DENCODE, "dencode") + _cases(JENCODE, "jencode")
ENCODABLE = [case for case in ALL if case.values[1]["direction"] == "encode+decode"]
DECODABLE = [case for case in ALL if case.values[1].get("hex") is not None]


def test_vector_files_are_complete() -> None:
    assert (len(DENCODE), len(JENCODE), len(MIXED), len(MESSAGES)) == (120, 105, 14, 62)


def test_every_vector_line_is_used() -> None:
    for case in ALL:
        assert case in ENCODABLE or case in DECODABLE, case.id


@pytest.mark.parametrize(("module", "row"), ENCODABLE)
def test_encode(module: str, row: dict) -> None:
    value = eval(row["value_repr"])
    mod = MODULES[module]
    if row.get("hex") is None:
        with pytest.raises(ProtocolError, match="cannot encode"):
            mod.encode(value)
    else:
        assert mod.encode(value).hex() == row["hex"]


@pytest.mark.parametrize(("module", "row"), DECODABLE)
def test_decode(module: str, row: dict) -> None:
    mod = MODULES[module]
    data = bytes.fromhex(row["hex"])
    if "decoded_repr" in row:
        value, consumed = mod.decode(data)
        assert same(value, eval(row["decoded_repr"])), (value, row["decoded_repr"])
        assert consumed == row["consumed"]
    else:
        assert row["direction"] == "decode-error" or "error" in row
        with pytest.raises(ProtocolError):
            mod.decode(data)


def test_decode_error_messages_say_what_is_wrong() -> None:
    errors = {row["id"]: bytes.fromhex(row["hex"]) for row in DENCODE if row["direction"] == "decode-error"}
    expected = {
        "dec_err_unknown_tag": "unknown type tag b'x' at offset 0",
        "dec_err_truncated_list": "missing 'e'",
        "dec_err_unhashable_key": "unhashable dict key of type list",
        "dec_err_bad_int": "invalid integer b'abc'",
    }
    assert set(errors) == set(expected)
    for name, text in expected.items():
        with pytest.raises(ProtocolError, match=None) as info:
            dencode.decode(errors[name])
        assert text in str(info.value)


def test_json_decode_errors() -> None:
    rows = {row["id"]: row for row in JENCODE if row["direction"] == "decode-only" and "error" in row}
    with pytest.raises(ProtocolError, match="unconverted data remains: .123"):
        jencode.decode(bytes.fromhex(rows["jdec_dt_with_us"]["hex"]))
    with pytest.raises(ProtocolError, match="refusing to decode an object of class 'Foo'"):
        jencode.decode(bytes.fromhex(rows["jdec_unknown_cls"]["hex"]))


@pytest.mark.parametrize("row", MIXED, ids=[r["desc"] for r in MIXED])
def test_mixed_decode(row: dict) -> None:
    data = bytes.fromhex(row["hex"])
    if "error" in row:
        with pytest.raises(ProtocolError, match="Expecting value"):
            codec.decode(data)
        return
    value, which = codec.decode_with_codec(data)
    assert same(value, eval(row["decoded_repr"]))
    assert which == ("dencode" if row["decoder"] == "DEncode" else "json")
    assert same(codec.decode(data), value)


@pytest.mark.parametrize("row", MESSAGES, ids=[r["id"] for r in MESSAGES])
def test_messages(row: dict) -> None:
    value = eval(row["value_repr"])
    framed = bytes.fromhex(row["framed_hex"])
    keepalive = framed.startswith(b"dka")
    # encode: payload + frame header are DIRAC's bytes
    payload = codec.encode(value, row["encoding"])
    assert len(payload) == row["payload_length"]
    assert framing.encode_frame(payload, keepalive=keepalive) == framed
    # decode: parse the frame, decode the payload, get what DIRAC's receiver gets
    parser = framing.FrameParser()
    parser.feed(framed)
    event = parser.next_event()
    assert isinstance(event, framing.KeepAlive if keepalive else framing.Frame)
    assert parser.next_event() is None and parser.at_boundary
    decoded, which = codec.decode_with_codec(event.payload)
    assert which == row["encoding"]
    receives = as_json_receives if which == "json" else as_dencode_receives
    assert same(decoded, receives(value))
    if keepalive:
        assert framing.parse_keepalive(decoded) == (value["Value"]["id"], value["Value"]["kaping"])
        assert framing.keepalive_payload(value["Value"]["id"], value["Value"]["kaping"], which) == payload
    # the transfer fast paths agree with the generic ones on these messages
    chunk = codec.decode_chunk(event.payload)
    if row["id"].startswith("ft_chunk."):
        assert chunk == value["Value"][1]
        assert b"".join(codec.encode_chunk_parts(chunk, row["encoding"])) == payload
    else:
        assert chunk is None
