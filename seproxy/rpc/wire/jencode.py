"""DIRAC's JSON encoding ("JEncode", PROTOCOL.md 3.2).

Byte layout: the text of ``json.dumps(value)`` with Python's defaults
(``", "`` / ``": "`` separators, ``ensure_ascii``, ``NaN``/``Infinity`` words,
insertion order), UTF-8 encoded (pure ASCII in practice). Types JSON lacks are
written as marker objects::

    +-------------------+----------------------------------------------+------------------+
    | Python value      | JSON                                         | decoded as       |
    +===================+==============================================+==================+
    | tuple             | array                                        | list             |
    | datetime          | {"__dCls": "dt", "obj": "YYYY-MM-DD HH:MM:SS"}| naive datetime,  |
    |                   |                                              | no microseconds  |
    | date              | {"__dCls": "date", "obj": "YYYY-MM-DD"}      | date             |
    | bytes             | {"__dCls": "b64", "obj": "<base64>"}         | bytes            |
    | int/float/bool/   | object key "1", "1.5", "true", "null"        | str key          |
    | None dict keys    |                                              |                  |
    +-------------------+----------------------------------------------+------------------+

``datetime.time``, sets and other objects are refused. On decoding, every object
with a truthy ``__dCls`` other than ``dt``/``date``/``b64`` is refused (DIRAC
would import the module named by ``__dMod``; seproxy never imports anything).
Decoding is bounded (``max_size``; ``max_depth`` is checked on the result, the
C parser itself stops at the interpreter's recursion limit) and raises only
``ProtocolError``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
from typing import Any

from seproxy.errors import ProtocolError
from seproxy.rpc.wire.dencode import as_bytes
from seproxy.rpc.wire.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"


class _Encoder(json.JSONEncoder):
    """``json.JSONEncoder`` with DIRAC's markers for datetime, date and bytes."""

    def default(self, o: Any) -> Any:
        if isinstance(o, _dt.datetime):
            if o.year < 1000:  # strftime's unpadded %Y, as DIRAC sends it
                return {"__dCls": "dt", "obj": o.strftime(DATETIME_FORMAT)}
            return {"__dCls": "dt", "obj": f"{o.year}-{o.month:02d}-{o.day:02d} "
                                           f"{o.hour:02d}:{o.minute:02d}:{o.second:02d}"}
        if isinstance(o, _dt.date):
            return {"__dCls": "date", "obj": o.strftime(DATE_FORMAT)}
        if isinstance(o, bytes):
            return {"__dCls": "b64", "obj": base64.b64encode(o).decode("ascii")}
        return super().default(o)


_ENCODER = _Encoder()


def encode(value: Any) -> bytes:
    """DIRAC JSON text of ``value`` as bytes; ``ProtocolError`` if it cannot be encoded."""
    try:
        return _ENCODER.encode(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"JSON cannot encode value: {exc}") from None
    except RecursionError:
        raise ProtocolError("JSON cannot encode value: nested too deeply (or recursive)") from None


_CANONICAL_DT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_CANONICAL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _object_hook(obj: dict) -> Any:
    cls = obj.pop("__dCls", None)
    if not cls:
        return obj
    if cls == "dt":
        text = obj["obj"]
        if type(text) is str and _CANONICAL_DT.fullmatch(text):  # fast path, same result
            return _dt.datetime.fromisoformat(text)
        return _dt.datetime.strptime(text, DATETIME_FORMAT)
    if cls == "date":
        text = obj["obj"]
        if type(text) is str and _CANONICAL_DATE.fullmatch(text):
            return _dt.date.fromisoformat(text)
        return _dt.datetime.strptime(text, DATE_FORMAT).date()
    if cls == "b64":
        return base64.b64decode(obj["obj"])
    raise ProtocolError(f"JSON: refusing to decode an object of class {cls!r} (__dCls)")


_DECODER = json.JSONDecoder(object_hook=_object_hook)

_CONTAINERS = (dict, list)


def nesting_depth(value: Any) -> int:
    """Deepest dict/list nesting of a decoded value (iterative, no recursion)."""
    deepest = 0
    stack = [(value, 1)] if type(value) in _CONTAINERS else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        items = node.values() if type(node) is dict else node
        stack.extend((item, depth + 1) for item in items if type(item) in _CONTAINERS)
    return deepest


def decode(data: bytes | bytearray | memoryview, *, max_depth: int = DEFAULT_MAX_DEPTH,
           max_size: int = DEFAULT_MAX_SIZE) -> tuple[Any, int]:
    """Decode DIRAC JSON: ``(value, len(data))`` like DIRAC."""
    data = as_bytes(data, "JSON")
    if len(data) > max_size:
        raise ProtocolError(f"JSON: payload of {len(data)} bytes exceeds the maximum of {max_size}")
    try:
        # what json.loads does with bytes (UTF-8/16/32 detection), without a decoder per call
        text = data.decode(json.detect_encoding(data), "surrogatepass")
        value = _DECODER.decode(text)
    except ProtocolError:
        raise
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"JSON: {exc}") from None
    except (ValueError, TypeError, KeyError, binascii.Error, OverflowError) as exc:
        raise ProtocolError(f"JSON: invalid value: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise ProtocolError(f"JSON: nesting deeper than {max_depth} levels "
                            "(beyond the interpreter's recursion limit)") from None
    # The C parser itself is bounded by the interpreter's recursion limit; the
    # configured bound is checked on the result, only when the text could exceed it.
    if data.count(b"[") + data.count(b"{") > max_depth and nesting_depth(value) > max_depth:
        raise ProtocolError(f"JSON: nesting deeper than {max_depth} levels")
    return value, len(data)
