"""Type-preserving JSON for values crossing the pytest <-> DIRAC-venv boundary.

The interop runner (``dirac_runner.py``) executes inside a DIRAC virtualenv and
talks to pytest through JSON on stdin/stdout.  DISET values include types JSON
cannot carry (bytes, tuples, datetimes, non-string dict keys, NaN...), and the
interop tests compare *types* as well as values, so such values travel in a
tagged form:

=========================  ===================================================
Python value               JSON form
=========================  ===================================================
None, bool, int, str       as is
float (finite)             as is
float nan / inf / -inf     ``{"__t": "float", "v": "nan" | "inf" | "-inf"}``
list                       JSON array (items tagged recursively)
tuple                      ``{"__t": "tuple", "v": [...]}``
dict, all keys ``str``     JSON object; a key ``"__t"`` forces the pair form
dict, other keys           ``{"__t": "dict", "v": [[key, value], ...]}``
bytes / bytearray          ``{"__t": "bytes", "v": "<hex>"}``
datetime.datetime          ``{"__t": "datetime", "v": "<isoformat>"}``
datetime.date              ``{"__t": "date", "v": "<isoformat>"}``
datetime.time              ``{"__t": "time", "v": "<isoformat>"}``
set / frozenset            ``{"__t": "set", "v": [...]}`` (decoded as set)
anything else              ``{"__t": "repr", "type": "<qualname>", "v": "<repr>"}`` (one-way)
=========================  ===================================================

Standard library only: this module is imported both by pytest
(``tests.interop.tagged``) and by the runner inside DIRAC's venv (``tagged``).
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

TAG = "__t"


def to_jsonable(value: Any) -> Any:
    """Turn *value* into plain JSON data, tagging what JSON cannot express."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return {TAG: "float", "v": "nan"}
        if math.isinf(value):
            return {TAG: "float", "v": "inf" if value > 0 else "-inf"}
        return value
    if isinstance(value, list):
        return [to_jsonable(item) for item in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "v": [to_jsonable(item) for item in value]}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and TAG not in value:
            return {key: to_jsonable(item) for key, item in value.items()}
        return {TAG: "dict", "v": [[to_jsonable(k), to_jsonable(v)] for k, v in value.items()]}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {TAG: "bytes", "v": bytes(value).hex()}
    # datetime is a subclass of date: test it first.
    if isinstance(value, datetime.datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, datetime.date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, datetime.time):
        return {TAG: "time", "v": value.isoformat()}
    if isinstance(value, (set, frozenset)):
        return {TAG: "set", "v": [to_jsonable(item) for item in value]}
    return {TAG: "repr", "type": type(value).__qualname__, "v": repr(value)}


def from_jsonable(data: Any) -> Any:
    """Inverse of :func:`to_jsonable` (``repr`` tags stay as their dict)."""
    if isinstance(data, list):
        return [from_jsonable(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(TAG)
    if tag is None:
        return {key: from_jsonable(item) for key, item in data.items()}
    raw = data.get("v")
    if tag == "float":
        return float(raw)
    if tag == "tuple":
        return tuple(from_jsonable(item) for item in raw)
    if tag == "dict":
        return {_hashable(from_jsonable(k)): from_jsonable(v) for k, v in raw}
    if tag == "bytes":
        return bytes.fromhex(raw)
    if tag == "datetime":
        return datetime.datetime.fromisoformat(raw)
    if tag == "date":
        return datetime.date.fromisoformat(raw)
    if tag == "time":
        return datetime.time.fromisoformat(raw)
    if tag == "set":
        return {_hashable(from_jsonable(item)) for item in raw}
    return data  # "repr" and unknown tags: keep the description


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def dumps(value: Any) -> str:
    """Serialise *value* (tagged) to a JSON string."""
    return json.dumps(to_jsonable(value), allow_nan=False)


def loads(text: str | bytes) -> Any:
    """Parse JSON produced by :func:`dumps` back into Python values."""
    return from_jsonable(json.loads(text))
