"""Helpers for the wire tests: strict value comparison and DIRAC's lossy conversions."""

from __future__ import annotations

import datetime
import math
from typing import Any


def same(a: Any, b: Any) -> bool:
    """Type-strict deep equality; NaN equals NaN, -0.0 differs from 0.0, dict order matters."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict):
        return list(map(_key, a)) == list(map(_key, b)) and all(
            same(x, y) for x, y in zip(a.values(), b.values(), strict=False))
    return a == b


def _key(k: Any) -> Any:
    return (type(k).__name__, repr(k))


def as_dencode_receives(value: Any) -> Any:
    """What a DEncode receiver gets for ``value`` (bytes become surrogateescaped str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [as_dencode_receives(v) for v in value]
    if isinstance(value, tuple):
        return tuple(as_dencode_receives(v) for v in value)
    if isinstance(value, dict):
        return {as_dencode_receives(k): as_dencode_receives(v) for k, v in value.items()}
    return value


def _json_key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if k is True or k is False:
        return "true" if k else "false"
    if k is None:
        return "null"
    if isinstance(k, float):
        return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(k, "NaN" if k != k else repr(k))
    return str(k)


def as_json_receives(value: Any) -> Any:
    """What a JSON receiver gets: tuples -> lists, keys -> str, datetimes without us/tz."""
    if isinstance(value, datetime.datetime):
        return value.replace(microsecond=0, tzinfo=None)
    if isinstance(value, (list, tuple)):
        return [as_json_receives(v) for v in value]
    if isinstance(value, dict):
        return {_json_key(k): as_json_receives(v) for k, v in value.items()}
    return value
