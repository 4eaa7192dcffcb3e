"""DIRAC JSON edge cases beyond the shared vectors."""

from __future__ import annotations

import collections
import datetime
import enum
import json
import math

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import jencode


class Color(str, enum.Enum):
    RED = "red"


def test_encoding_is_json_dumps_defaults() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é\U0001F600", 3: (1,), None: math.nan, 1.5: math.inf}
    text = jencode.encode(value)
    assert text == json.dumps(value).encode()
    assert text.isascii()
    assert b'"3": [1]' in text and b'"null": NaN' in text and b'"1.5": Infinity' in text


def test_subclasses_encode_like_their_base() -> None:
    assert jencode.encode(collections.OrderedDict(a=Color.RED)) == b'{"a": "red"}'


def test_markers() -> None:
    assert jencode.encode(b"\x00\xff\xfe") == b'{"__dCls": "b64", "obj": "AP/+"}'
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 999999, tzinfo=datetime.timezone.utc)
    assert jencode.encode(when) == b'{"__dCls": "dt", "obj": "2024-01-02 03:04:05"}'
    assert jencode.encode(datetime.date(2024, 2, 29)) == b'{"__dCls": "date", "obj": "2024-02-29"}'
    assert jencode.decode(jencode.encode([b"", b"abc"])) == ([b"", b"abc"], 64)


@pytest.mark.parametrize(("value", "message"), [
    (datetime.time(1, 2), "Object of type time is not JSON serializable"),
    ({1, 2}, "Object of type set is not JSON serializable"),
    (bytearray(b"x"), "Object of type bytearray is not JSON serializable"),
    ({(1, 2): "t"}, "keys must be str, int, float, bool or None, not tuple"),
    ({b"k": 1}, "keys must be str, int, float, bool or None, not bytes"),
])
def test_unencodable(value: object, message: str) -> None:
    with pytest.raises(ProtocolError, match=f"JSON cannot encode value: {message}"):
        jencode.encode(value)


def test_recursive_value() -> None:
    loop: dict = {}
    loop["x"] = loop
    with pytest.raises(ProtocolError, match="Circular reference"):
        jencode.encode(loop)


def test_dcls_handling() -> None:
    assert jencode.decode(b'{"__dCls": null, "a": 1}')[0] == {"a": 1}  # falsy marker popped, like DIRAC
    assert jencode.decode(b'{"__dCls": "", "a": 1}')[0] == {"a": 1}
    for bad in (b'{"__dCls": "Foo", "__dMod": "os", "x": 1}', b'{"__dCls": 5}'):
        with pytest.raises(ProtocolError, match="refusing to decode an object of class"):
            jencode.decode(bad)
    with pytest.raises(ProtocolError, match="KeyError: 'obj'"):
        jencode.decode(b'{"__dCls": "dt"}')
    with pytest.raises(ProtocolError, match="invalid value"):
        jencode.decode(b'{"__dCls": "b64", "obj": "A"}')
    with pytest.raises(ProtocolError, match="invalid value"):
        jencode.decode(b'{"__dCls": "date", "obj": 5}')


def test_nesting_bound() -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(ProtocolError, match="nesting deeper than 200 levels"):
        jencode.decode(deep)
    assert jencode.decode(b"[" * 200 + b"]" * 200)[1] == 400
    # brackets inside strings do not count; many siblings are not depth
    assert jencode.decode(json.dumps(["[[[[" * 100, [[]] * 500]).encode())[0][0] == "[[[[" * 100
    assert jencode.decode(b'["\\"[[[[["]', max_depth=1)[0] == ['"[[[[[']
    with pytest.raises(ProtocolError, match="nesting deeper than 2 levels"):
        jencode.decode(b'{"a": {"b": [1]}}', max_depth=2)
    assert jencode.nesting_depth({"a": {"b": [1]}}) == 3 and jencode.nesting_depth(5) == 0


def test_max_size_and_input_types() -> None:
    with pytest.raises(ProtocolError, match="payload of 6 bytes exceeds the maximum of 5"):
        jencode.decode(b"[1, 2]", max_size=5)
    assert jencode.decode(bytearray(b"[1]")) == ([1], 3)
    assert jencode.decode(memoryview(b"[1]")) == ([1], 3)
    with pytest.raises(ProtocolError, match="payload must be bytes"):
        jencode.decode("[1]")  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "message"), [
    (b"", "Expecting value"),
    (b"[1, 2", "Expecting ',' delimiter"),
    (b'{"a" 1}', "Expecting ':' delimiter"),
    (b'"\xff"', "invalid value: UnicodeDecodeError"),
    (b"[1] x", "Extra data"),
    (b"1" * 5000, "invalid value: ValueError: Exceeds the limit"),
])
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match="^JSON: ") as info:
        jencode.decode(data)
    assert message in str(info.value)


def test_repeated_datetimes_keep_their_own_text() -> None:
    """The encoder remembers the last two datetime objects' markers: whatever the order
    and repetition, every datetime is written as its own value."""
    start = datetime.datetime(2020, 1, 2, 3, 4, 5, 999999)
    other = datetime.datetime(1999, 12, 31, 23, 59, 59)
    for second in range(5):
        now = datetime.datetime(2026, 11, 28, 7, 0, second, 123)
        value = {"time": now, "start": start, "other": other, "again": start, "now": now}
        text = jencode.encode(value)
        assert text == json.dumps({k: {"__dCls": "dt", "obj": v.strftime("%Y-%m-%d %H:%M:%S")}
                                   for k, v in value.items()}).encode()
        assert jencode.decode(text)[0] == {k: v.replace(microsecond=0) for k, v in value.items()}


@pytest.mark.parametrize("text", [
    b'{"v": {"__dCls": "dt", "obj": "2020-01-02 03:04:05"}}',
    b'{"v": {"\\u005f_dCls": "dt", "obj": "2020-01-02 03:04:05"}}',  # the key spelt with an escape
    b'{"v": {"__dCl\\u0073": "dt", "obj": "2020-01-02 03:04:05"}}',
])
def test_markers_are_found_however_the_key_is_written(text: bytes) -> None:
    assert jencode.decode(text)[0] == {"v": datetime.datetime(2020, 1, 2, 3, 4, 5)}


def test_objects_without_markers_decode_like_json() -> None:
    text = b'{"OK": true, "Value": ["ping", [], {"a": [1, 2.5, null, "\\u00e9"]}]}'
    assert jencode.decode(text)[0] == json.loads(text)
    assert jencode.decode(b'{"__dCls": null, "x": 1}')[0] == {"x": 1}  # a falsy marker is dropped
