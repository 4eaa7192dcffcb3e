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
``ProtocolError``. It parses with orjson where that certainly gives what the json
module gives (``_orjson_value`` says when); everything else, errors included, goes
through the json module (``_json_module_value``), so values and messages are the
json module's.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

try:  # a faster parser for the common case (see decode)
    import orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the json module still works
    orjson = None

from seproxy.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from seproxy.rpc.wire.dencode import as_bytes
from seproxy.rpc.wire.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"


class _Encoder(json.JSONEncoder):
    """``json.JSONEncoder`` with DIRAC's markers for datetime, date and bytes."""

    #: The two datetime objects encoded last and their markers (most recent first): a
    #: value sent again and again (a service's start time in every ping) is formatted
    #: once. Objects, not values, are compared (``is``; the tuple keeps them alive) and
    #: the tuple is replaced whole, so threads always see matching pairs.
    _recent_dt: tuple = (None, None, None, None)

    def default(self, o: Any) -> Any:
        if isinstance(o, _dt.datetime):
            recent = self._recent_dt
            if o is recent[0]:
                return recent[1]
            if o is recent[2]:
                self._recent_dt = (o, recent[3], recent[0], recent[1])
                return recent[3]
            if o.year < 1000:  # strftime's unpadded %Y, as DIRAC sends it
                return {"__dCls": "dt", "obj": o.strftime(DATETIME_FORMAT)}
            # printf-style: a third of the cost of the equivalent f-string with format specs
            marker = {"__dCls": "dt", "obj": "%d-%02d-%02d %02d:%02d:%02d" % (
                o.year, o.month, o.day, o.hour, o.minute, o.second)}
            self._recent_dt = (o, marker, recent[0], recent[1])
            return marker
        if isinstance(o, _dt.date):
            return {"__dCls": "date", "obj": o.strftime(DATE_FORMAT)}
        if isinstance(o, bytes):
            return {"__dCls": "b64", "obj": base64.b64encode(o).decode("ascii")}
        return super().default(o)


_ENCODER = _Encoder()
_C_ENCODER_ARGS = (_ENCODER.default, encode_basestring_ascii, None, _ENCODER.key_separator,
                   _ENCODER.item_separator, False, False, True)


def _text(value: Any) -> str:
    """``_ENCODER.encode(value)``: what ``JSONEncoder.encode`` runs for a container with
    ensure_ascii and no indent (the C encoder, fresh circular-reference markers),
    without its Python-level set-up on every message."""
    if c_make_encoder is None or isinstance(value, str):  # pragma: no cover - CPython has it
        return _ENCODER.encode(value)
    return "".join(c_make_encoder({}, *_C_ENCODER_ARGS)(value, 0))


def encode(value: Any) -> bytes:
    """DIRAC JSON text of ``value`` as bytes; ``ProtocolError`` if it cannot be encoded."""
    try:
        return _text(value).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"JSON cannot encode value: {exc}") from None
    except RecursionError:
        raise LocalProtocolError("JSON cannot encode value: nested too deeply (or recursive)") from None


_CANONICAL_DT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_CANONICAL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


#: Recently decoded datetime markers by text (datetimes are immutable): a value received
#: again and again (a service's start time in every ping answer) is parsed once. Bounded:
#: emptied when full.
_DT_CACHE: dict[str, _dt.datetime] = {}
_DT_CACHE_SIZE = 64


def _object_hook(obj: dict) -> Any:
    cls = obj.pop("__dCls", None)
    if not cls:
        return obj
    if cls == "dt":
        text = obj["obj"]
        if type(text) is str:
            value = _DT_CACHE.get(text)
            if value is not None:
                return value
            if _CANONICAL_DT.fullmatch(text):  # fast path, same result
                value = _dt.datetime.fromisoformat(text)
                if len(_DT_CACHE) >= _DT_CACHE_SIZE:
                    _DT_CACHE.clear()
                _DT_CACHE[text] = value
                return value
        return _dt.datetime.strptime(text, DATETIME_FORMAT)
    if cls == "date":
        text = obj["obj"]
        if type(text) is str and _CANONICAL_DATE.fullmatch(text):
            return _dt.date.fromisoformat(text)
        return _dt.datetime.strptime(text, DATE_FORMAT).date()
    if cls == "b64":
        return base64.b64decode(obj["obj"])
    raise RemoteProtocolError(f"JSON: refusing to decode an object of class {cls!r} (__dCls)")


_DECODER = json.JSONDecoder(object_hook=_object_hook)
_SCAN = _DECODER.scan_once
_SCAN_PLAIN = json.JSONDecoder().scan_once

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


#: ``data.translate(_SCAN_TABLE)``: digits -> "0", "{" and "[" -> "[", the rest -> " ".
#: A run of 19 "0" is where an integer orjson cannot hold may be (beyond 64 bits it
#: returns a float; beyond ~4300 digits the json module refuses it), or a long float
#: or string; the "[" count bounds the depth.
_SCAN_TABLE = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x5B if byte in b"{[" else 0x20
                    for byte in range(256))
_LONG_DIGITS = b"0" * 19
#: A ``\\u`` escape of one of the letters of ``__dCls`` (``_``, ``d``, ``C``, ``l``, ``s``):
#: without one, the marker key can only be written ``__dCls``.
_MARKER_ESCAPE = re.compile(rb"\\u00(?:5[fF]|6[4cC]|43|73)")
#: The orjson path only returns values at most this deep (raw, markers counted as
#: objects); deeper ones take the json module's path, whose recursion limit decides.
_ORJSON_MAX_DEPTH = 200
#: Markers are converted by a walk over the result in Python: with fewer than this many
#: bytes per marker (many small objects, most of them markers) the json path is cheaper
#: (measured in instructions: ping answer 244 bytes/marker, metadata listing 250: orjson
#: path; 100 keys, a quarter of them datetimes, 92: json path).
_BYTES_PER_MARKER = 200
_CONTAINER_TYPES = frozenset(_CONTAINERS)
_FALLBACK = object()


class _TooDeep(Exception):
    pass


def _convert_markers(node: Any, todo: list[int], levels: int) -> Any:
    """What ``_object_hook`` makes of an orjson result (a dict or list): every object,
    inner ones first, loses its ``__dCls`` key or becomes the marked value. ``todo[0]``
    counts down the objects with that key still to find; at 0 the walk stops (nothing
    else can change). ``_TooDeep`` past ``levels`` levels (so the recursion is bounded).
    (A plain loop: cheaper here than filtering the members in C with compress/map.)"""
    if not levels:
        raise _TooDeep
    levels -= 1
    if type(node) is dict:
        for key, item in node.items():
            if type(item) in _CONTAINER_TYPES:
                new = _convert_markers(item, todo, levels)
                if new is not item:
                    node[key] = new  # an existing key: the iteration goes on
                if not todo[0]:
                    return node  # had this object the key, todo could not be 0 yet
        if "__dCls" in node:
            todo[0] -= 1
            return _object_hook(node)
        return node
    for index, item in enumerate(node):
        if type(item) in _CONTAINER_TYPES:
            new = _convert_markers(item, todo, levels)
            if new is not item:
                node[index] = new
            if not todo[0]:
                break
    return node


def _orjson_value(data: bytes, max_depth: int) -> Any:
    """``data`` parsed by orjson, or ``_FALLBACK`` unless that is certainly what the json
    module's path returns. Only UTF-8 text starting with ``{``/``[`` (what
    json.detect_encoding calls UTF-8, no BOM) reaches this. orjson refuses everything
    the json module refuses and more (NaN/Infinity, 1e400, lone surrogates,
    surrogatepass UTF-8, more than 1024 levels) and parses the rest to equal values,
    except integers beyond 64 bits (floats): a run of 19 digits takes the json path, as
    do a marker key spelt with escapes and anything deeper than
    ``min(max_depth, _ORJSON_MAX_DEPTH)``. Markers are converted on the result; the json
    module's hook also runs on objects a duplicate key drops, so unless every ``__dCls``
    of the text is a key found in the result, the json path decides (as it does on any
    error in a marker: it raises its own error, in its order)."""
    markers = data.count(b"__dCls")
    if markers and len(data) < markers * _BYTES_PER_MARKER:
        return _FALLBACK  # dense markers: the json module's C parser calling the hook is cheaper
    scanned = data.translate(_SCAN_TABLE)
    if _LONG_DIGITS in scanned or (b"\\" in data and _MARKER_ESCAPE.search(data) is not None):
        return _FALLBACK
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _FALLBACK
    limit = min(max_depth, _ORJSON_MAX_DEPTH)
    # could it be deeper than the limit? (depth d needs 2d bytes, d of them brackets)
    deep = len(data) > 2 * limit and scanned.count(b"[") > limit
    if markers:
        todo = [markers + deep]  # deep: todo never reaches 0, the walk sees (and bounds) all
        try:
            value = _convert_markers(value, todo, limit)
        except Exception:  # noqa: BLE001 - the json path raises its own error, in its order
            return _FALLBACK
        if todo[0] != deep:
            return _FALLBACK
    elif deep and nesting_depth(value) > limit:
        return _FALLBACK
    return value


def decode(data: bytes | bytearray | memoryview, *, max_depth: int = DEFAULT_MAX_DEPTH,
           max_size: int = DEFAULT_MAX_SIZE) -> tuple[Any, int]:
    """Decode DIRAC JSON: ``(value, len(data))`` like DIRAC."""
    data = _bounded(data, max_size)
    if orjson is not None and len(data) > 1 and (data[0] == 0x7B or data[0] == 0x5B) and data[1]:
        value = _orjson_value(data, max_depth)
        if value is not _FALLBACK:
            return value, len(data)
    return _json_module_value(data, max_depth), len(data)


def _decode_json_module(data: bytes | bytearray | memoryview, *, max_depth: int = DEFAULT_MAX_DEPTH,
                        max_size: int = DEFAULT_MAX_SIZE) -> tuple[Any, int]:
    """``decode`` with the json module only (the reference the orjson path is tested against)."""
    data = _bounded(data, max_size)
    return _json_module_value(data, max_depth), len(data)


def _bounded(data: bytes | bytearray | memoryview, max_size: int) -> bytes:
    data = as_bytes(data, "JSON")
    if len(data) > max_size:
        raise RemoteProtocolError(f"JSON: payload of {len(data)} bytes exceeds the maximum of {max_size}")
    return data


def _json_module_value(data: bytes, max_depth: int) -> Any:
    try:
        if len(data) > 1 and data[0] == 0x7B and data[1]:  # "{" + not NUL: UTF-8 (detect_encoding)
            text = data.decode("utf-8", "surrogatepass")
            # no object can carry a "__dCls" key (not in the text, and no \u escape could
            # spell it): the hook has nothing to do, the scanner runs without it
            scan = _SCAN_PLAIN if b"__dCls" not in data and b"\\u" not in data else _SCAN
            try:  # the whole text is one object: what _DECODER.decode returns, without its wrapper
                value, end = scan(text, 0)
            except StopIteration:
                end = -1
            if end != len(text):  # anything else (trailing blanks, errors): the full path
                value = _DECODER.decode(text)
        else:
            # what json.loads does with bytes (UTF-8/16/32 detection), without a decoder per call
            text = data.decode(json.detect_encoding(data), "surrogatepass")
            value = _DECODER.decode(text)
    except ProtocolError:
        raise
    except json.JSONDecodeError as exc:
        raise RemoteProtocolError(f"JSON: {exc}") from None
    except (ValueError, TypeError, KeyError, binascii.Error, OverflowError) as exc:
        raise RemoteProtocolError(f"JSON: invalid value: {type(exc).__name__}: {exc}") from None
    except RecursionError:
        raise RemoteProtocolError(f"JSON: nesting deeper than {max_depth} levels "
                            "(beyond the interpreter's recursion limit)") from None
    # The C parser itself is bounded by the interpreter's recursion limit; the
    # configured bound is checked on the result, only when the text could exceed it.
    # (a depth d needs d brackets opened and closed: text of at most 2 * max_depth bytes
    # cannot be deeper, and is not counted)
    if (len(data) > 2 * max_depth and data.count(b"[") + data.count(b"{") > max_depth
            and nesting_depth(value) > max_depth):
        raise RemoteProtocolError(f"JSON: nesting deeper than {max_depth} levels")
    return value
