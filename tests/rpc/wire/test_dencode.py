"""DEncode edge cases beyond the shared vectors: exact types, floats, bounds, errors."""

from __future__ import annotations

import collections
import datetime
import enum
import math

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc.wire import dencode
from tests.rpc.wire.helpers import same


class Color(str, enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    ONE = 1


class MyStr(str):
    pass


@pytest.mark.parametrize("value", [
    collections.OrderedDict(a=1), collections.defaultdict(int), Color.RED, Level.ONE, MyStr("x"),
    {1, 2}, frozenset(), bytearray(b"x"), memoryview(b"x"), object(), 1j,
    datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
    datetime.time(1, 2, tzinfo=datetime.timezone.utc),
    [1, {"nested": {2}}], {"k": [Level.ONE]}, {frozenset(): 1},
])
def test_exact_type_dispatch_refuses_other_types(value: object) -> None:
    with pytest.raises(ProtocolError, match="DEncode cannot encode a value of type"):
        dencode.encode(value)


def test_unencodable_str_and_huge_int() -> None:
    with pytest.raises(ProtocolError, match="not valid Unicode"):
        dencode.encode({"k": "\udcff"})
    with pytest.raises(ProtocolError, match="cannot encode value"):
        dencode.encode(10 ** 5000)


def test_recursive_value_is_protocol_error() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(ProtocolError, match="nested too deeply"):
        dencode.encode(loop)


def test_bytes_chunk_is_not_copied_by_encode_parts() -> None:
    chunk = bytes(range(256)) * 100
    parts = dencode.encode_parts([True, chunk])
    assert any(part is chunk for part in parts)
    assert b"".join(parts) == b"lb1s25600:" + chunk + b"e"


@pytest.mark.parametrize(("text", "dirac", "exact"), [
    (b"f1.23456789e+17e", 1.2345678899999998e+17, 1.23456789e+17),
    (b"f9.87e+20e", 9.869999999999999e+20, 9.87e+20),
    (b"f5e-324e", 0.0, 5e-324),
    (b"f1e+16e", 1e16, 1e16),
    (b"f2.5e-07e", 2.5e-07, 2.5e-07),
])
def test_float_exponent_dirac_and_exact_modes(text: bytes, dirac: float, exact: float) -> None:
    assert dencode.decode(text) == (dirac, len(text))
    assert dencode.decode(text, exact_floats=True) == (exact, len(text))


def test_float_special_values_and_roundtrip_in_exact_mode() -> None:
    for value in (math.inf, -math.inf, -0.0, 1e308, 2.2250738585072014e-308, 5e-324, 0.1):
        encoded = dencode.encode(value)
        assert same(dencode.decode(encoded, exact_floats=True)[0], value), encoded
    assert math.isnan(dencode.decode(dencode.encode(math.nan))[0])


@pytest.mark.parametrize("data", [b"f1e+999999999e", b"f1e+309e", b"f" + b"1" * 2000 + b"e"])
def test_float_out_of_range_or_too_long_is_error(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="float"):
        dencode.decode(data)


def test_inputs_of_any_bytes_like_type() -> None:
    for data in (b"li1ee", bytearray(b"li1ee"), memoryview(b"xli1ee")[1:]):
        assert dencode.decode(data) == ([1], 5)
    with pytest.raises(ProtocolError, match="payload must be bytes, not str"):
        dencode.decode("li1ee")  # type: ignore[arg-type]


def test_trailing_bytes_ignored_consumed_reported() -> None:
    assert dencode.decode(b"i5eGARBAGE") == (5, 3)
    assert dencode.decode(b"ds2:OKb1s5:Valuenede") == ({"OK": True, "Value": None}, 18)


def test_nested_10000_deep_list_is_protocol_error() -> None:
    data = b"l" * 10_000 + b"e" * 10_000
    with pytest.raises(ProtocolError, match="nesting deeper than 200 levels"):
        dencode.decode(data)
    # the same input is fine when the caller allows it, up to the bound exactly
    value, consumed = dencode.decode(b"l" * 200 + b"e" * 200)
    assert consumed == 400
    with pytest.raises(ProtocolError, match="nesting deeper than 5 levels at offset 5"):
        dencode.decode(b"dl" * 3 + b"e" * 6, max_depth=5)
    with pytest.raises(ProtocolError, match="nesting"):
        dencode.decode(b"zd" * 300 + b"ti1ei1ei1ee", max_depth=10)


def test_max_size() -> None:
    with pytest.raises(ProtocolError, match="payload of 11 bytes exceeds the maximum of 10"):
        dencode.decode(b"s8:abcdefgh", max_size=10)
    assert dencode.decode(b"s7:abcdefg", max_size=10) == ("abcdefg", 10)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty payload"),
    (b"s99999999999999999999:abc", "truncated string: declares 99999999999999999999 bytes, only 3 left"),
    (b"s10:abc", "truncated string: declares 10 bytes, only 3 left"),
    (b"s+3:abc", "string length is not digits"),
    (b"s 3:abc", "string length is not digits"),
    (b"s3abc", "string length is not digits"),
    (b"s" + b"9" * 30 + b":", "string length is not digits"),
    (b"i12", "integer without terminating 'e'"),
    (b"i" + b"1" * 5000 + b"e", "integer without terminating 'e'"),
    (b"i1.5e", "invalid integer b'1.5'"),
    (b"ie", "invalid integer b''"),
    (b"b", "truncated bool"),
    (b"l", "missing 'e'"),
    (b"li1e", "missing 'e'"),
    (b"d", "missing 'e'"),
    (b"ds1:a", "missing 'e'"),
    (b"ds1:ae", "dict with a key but no value"),
    (b"", "empty payload"),
    (b"x", "unknown type tag b'x'"),
    (b"l\xffe", "unknown type tag b'\\xff' at offset 1"),
    (b"dli1eei2ee", "unhashable dict key of type list"),
    (b"z", "truncated date/time"),
    (b"zq", "unknown date/time kind b'q'"),
    (b"zai5e", "date/time fields must be a list or tuple, not int"),
    (b"zati2024ei13ei1ee", "invalid date/time fields: month must be in 1..12"),
    (b"zati2024ee", "invalid date/time fields"),
    (b"zati2024ei1ei1ei1ei1ei1ei1es3:utce", "invalid date/time fields"),
    (b"fe", "invalid float"),
    (b"f1.5", "float without terminating 'e'"),
    (b"f1e+", "float exponent without terminating 'e'"),
    (b"f1e+xe", "invalid float"),
])
def test_malformed_input_messages(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        dencode.decode(data)
    assert message in str(info.value)
    assert str(info.value).startswith("DEncode: ")


def test_lax_ints_like_dirac() -> None:
    assert dencode.decode(b"i+5e") == (5, 4)
    assert dencode.decode(b"i 7 e") == (7, 5)
    assert dencode.decode(b"i1_000e") == (1000, 7)
    assert dencode.decode(b"i007e") == (7, 5)


def test_dirac_decoder_quirks() -> None:
    assert dencode.decode(b"b2") == (True, 2)  # any byte but "0" is True
    assert dencode.decode(b"u3:abc") == ("abc", 6)
    assert dencode.decode(b"zali2024ei1ei2ei3ei4ei5ei0enee")[0] == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert dencode.decode(b"s2:\xff\xfe") == ("\udcff\udcfe", 5)
    assert dencode.decode(b"s0:") == ("", 3)
