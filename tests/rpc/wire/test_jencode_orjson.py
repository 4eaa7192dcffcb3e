"""jencode.decode parses with orjson where it can: the result (or the ProtocolError and its
message) must be exactly what the json-module decoder (``_decode_json_module``) gives."""

from __future__ import annotations

import datetime
import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from seproxy.errors import ProtocolError
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.wire import jencode
from tests.rpc.wire.helpers import same
from tests.rpc.wire.test_fuzz import mutate


def outcome(decoder, data: bytes, **limits) -> tuple[str, object]:
    try:
        return "value", decoder(data, **limits)
    except ProtocolError as exc:
        return "error", str(exc)


def assert_same_as_json_module(data: bytes, **limits) -> None:
    new = outcome(jencode.decode, data, **limits)
    old = outcome(jencode._decode_json_module, data, **limits)
    assert new[0] == old[0], (data, new, old)
    if new[0] == "error":
        assert new[1] == old[1], data
    else:
        assert same(new[1], old[1]), (data, new, old)


def takes_orjson_path(data: bytes, max_depth: int = 200) -> bool:
    return jencode._orjson_value(data, max_depth) is not jencode._FALLBACK


def ping_payload() -> bytes:
    handler = RequestHandler({"serviceName": "Framework/Test", "URL": "dips://127.0.0.1:9135/Framework/Test",
                              "serviceStartTime": datetime.datetime(2026, 11, 28, 9, 0, 0)}, "t")
    return jencode.encode(handler.export_ping())


def test_common_payloads_take_the_orjson_path_and_decode_alike() -> None:
    payloads = [
        ping_payload(),
        jencode.encode({f"key{i}": [i, i * 0.5, f"value {i}", None, True] for i in range(100)}),
        jencode.encode(["echo", {"a": "\u00e9\U0001F600" * 50, "b": b"\x00\xff", "c": datetime.date(2024, 2, 29)}]),
    ]
    for data in payloads:
        assert takes_orjson_path(data), data
        assert_same_as_json_module(data)


# Inputs where orjson and the json module differ (or where the hook's side effects matter).
EDGE_CASES = [
    b'[18446744073709551615, -9223372036854775808]',   # 64-bit bounds: orjson ints
    b'[18446744073709551616]', b'[-9223372036854775809]',  # beyond: orjson gives floats
    b'{"a": 123456789012345678901234567890}', b'[' + b'1' * 5000 + b']',
    b'[-0, -0.0, 0e0, 1E2, 1e-400, 4.9e-324, 2.2250738585072011e-308]',
    b'[1e400]', b'[-1e400]', b'[1.7976931348623159e308]', b'{"a": NaN, "b": Infinity, "c": -Infinity}',
    b'["\\ud800"]', b'{"\\udc00\\ud800": 1}', b'["\\ud83d\\ude00"]', b'["\xed\xa0\x80"]',
    b'["\xf4\x90\x80\x80"]', b'["\xc0\x80"]', b'{"a": "\xff"}',
    b'{"a": 1, "a": 2, "b": 3}', b'{"a": {"__dCls": "Foo"}, "a": 1}',
    b'{"a": {"__dCls": "b64", "obj": "A"}, "a": 1}', b'[{"a": {"__dCls": "dt", "obj": 5}, "a": 2}]',
    b'{"__dCls": "dt", "__dCls": null, "x": 1}', b'{"__dCls": null, "__dCls": "dt", "obj": "2020-01-02 03:04:05"}',
    b'{"s": "__dCls", "d": {"__dCls": "date", "obj": "2020-01-02"}}',
    b'{"v": {"\\u005f_dCls": "dt", "obj": "2020-01-02 03:04:05"}}',
    b'{"v": {"__dCl\\u0073": "Foo"}}', b'{"\\u00e9": {"__dCls": "dt", "obj": "2020-01-02 03:04:05"}}',
    b'{"__dCls": "b64", "obj": {"__dCls": "b64", "obj": "AA=="}}',
    b'{"__dCls": "dt", "obj": {"__dCls": "date", "obj": "2020-01-02"}}',
    b'{"__dCls": ["x"], "obj": 1}', b'{"__dCls": {"__dCls": "Foo"}}', b'{"__dCls": 0}', b'{"__dCls": []}',
    b'[{"__dCls": "Foo"}, {"__dCls": "dt"}]', b'[{"__dCls": "dt"}, {"__dCls": "Foo"}]',
    b'{"__dCls": "dt", "obj": "2020-1-2 3:4:5"}', b'{"__dCls": "dt", "obj": "0999-01-02 03:04:05"}',
    b'{"__dCls": "date", "obj": "2020-02-30"}', b'{"__dCls": "b64", "obj": "AP/+"}',
    b'{"__dCls": "dt", "obj": "2020-01-02 03:04:05", "extra": [[[1]]]}',
    b'[1] \t\r\n', b'[1]\x0b', b'[1]\x0c', b'[1]\x00', b'[1] x', b'{"a" 1}', b'[1,]', b'{"a":1,}',
    b'["\x01"]', b'["\x7f"]', b'["\\u0000"]', b'["a\\/b"]', b'["\\U0041"]', b'[01]', b'[1.]', b'[.5]',
    b'[+1]', b'[-]', b'[tru]', b'[true, false, null]', b'{}', b'[]', b'[', b'{', b'{"', b'[]]',
    b'\xef\xbb\xbf[1]', b'[\x00]', b'{\x00', b'\xff\xfe[\x00]\x00', b'[\x001\x00]\x00',
    '{"a": [1, "\u00e9"]}'.encode("utf-16-le"), '[1]'.encode("utf-32"), b' [1]', b'\n{"a": 1}',
    b'[' * 200 + b']' * 200, b'[' * 201 + b']' * 201, b'[' * 1025 + b']' * 1025,
    b'[' * 300 + b'{"__dCls": "dt", "obj": "2020-01-02 03:04:05"}' + b']' * 300,
    b'[' * 199 + b'{"__dCls": "dt", "obj": "2020-01-02 03:04:05"}' + b']' * 199,
    b'[' * 200 + b'{"__dCls": "dt", "obj": "2020-01-02 03:04:05"}' + b']' * 200,
    b'{"__dCls": "dt", "obj": "2020-01-02 03:04:05", "x": ' + b'[' * 300 + b']' * 300 + b'}',
    b'["[[[[[[", {"a": "{{{{"}]',
]


@pytest.mark.parametrize("data", EDGE_CASES, ids=[f"case{i}" for i in range(len(EDGE_CASES))])
@pytest.mark.parametrize("max_depth", [200, 2, 1000])
def test_edge_cases_decode_like_the_json_module(data: bytes, max_depth: int) -> None:
    assert_same_as_json_module(data, max_depth=max_depth)


def test_dense_markers_take_the_json_path() -> None:
    data = jencode.encode([datetime.date(2024, 2, 29), b"x"] * 10)
    assert not takes_orjson_path(data)
    assert_same_as_json_module(data)


def test_the_fallbacks_are_needed() -> None:
    """The inputs above do reach the checks: orjson alone would differ on them."""
    import orjson
    assert type(orjson.loads(b'[18446744073709551616]')[0]) is float  # the json module: int
    assert not takes_orjson_path(b'[18446744073709551616]')
    assert not takes_orjson_path(b'{"a": {"__dCls": "Foo"}, "a": 1}')  # dropped marker: json raises
    with pytest.raises(ProtocolError, match="refusing to decode"):
        jencode.decode(b'{"a": {"__dCls": "Foo"}, "a": 1}')
    assert jencode.decode(b'{"__dCls": "b64", "obj": {"__dCls": "b64", "obj": "AA=="}}')[0] == b""
    assert not takes_orjson_path(b'[' * 201 + b']' * 201)
    assert takes_orjson_path(b'[' * 200 + b']' * 200)
    assert not takes_orjson_path(b'[[[]]]', max_depth=2)
    assert not takes_orjson_path(b'{"v": {"\\u005f_dCls": "dt", "obj": "2020-01-02 03:04:05"}}')


# Hypothesis: random JSON-ish values, encoded like DIRAC (and like other JSON writers), mutated.
big_ints = st.sampled_from([2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 2 ** 64, -(2 ** 63), -(2 ** 63) - 1, 10 ** 30])
ints = st.integers() | st.integers(min_value=-(10 ** 40), max_value=10 ** 40) | big_ints
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 5e-324, 1e300, 1e16, 1.5e-7])
texts = st.text(st.characters(blacklist_categories=()), max_size=12)  # lone surrogates included
keys = texts | st.sampled_from(["__dCls", "obj", "a", "a"])
scalars = (st.none() | st.booleans() | ints | floats | texts | st.binary(max_size=8)
           | st.datetimes(min_value=datetime.datetime(1, 1, 1)) | st.dates())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5)
                      | st.dictionaries(keys, inner, max_size=5), max_leaves=20)


def _as_text(value: object, ensure_ascii: bool, compact: bool) -> bytes:
    separators = (",", ":") if compact else None
    text = json.dumps(value, default=jencode._ENCODER.default, ensure_ascii=ensure_ascii,
                      separators=separators)
    return text.encode("utf-8", "surrogatepass")


@settings(max_examples=400, deadline=None)
@given(value=values, ensure_ascii=st.booleans(), compact=st.booleans(), rnd=st.randoms(use_true_random=False),
       mutations=st.integers(min_value=0, max_value=3), max_depth=st.sampled_from([200, 200, 3, 1000]))
@example(value={"a": [10 ** 30, math.inf, "\ud800"]}, ensure_ascii=True, compact=False, rnd=None, mutations=0,
         max_depth=200)
def test_decode_equals_the_json_module(value, ensure_ascii, compact, rnd, mutations, max_depth) -> None:
    data = _as_text(value, ensure_ascii, compact)
    if mutations and rnd is not None:
        for _ in range(mutations):
            data = mutate(rnd, data)
    assert_same_as_json_module(data, max_depth=max_depth)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_objects_with_duplicate_keys(value: dict, rnd) -> None:
    """Whole members repeated: the json module's hook runs on every copy, the result keeps the last."""
    text = _as_text(value, True, False)
    members = text[1:-1].split(b", ")
    doubled = b"{" + b", ".join(members + [rnd.choice(members)] + members[:1]) + b"}"
    assert_same_as_json_module(doubled)
