"""DEncode, DIRAC's bencode-like binary encoding (PROTOCOL.md 3.1).

Byte layout (one tag byte, then a tag-specific body)::

    +-----+-----------+------------------------------------+------------------------------+
    | tag | type      | body                               | example                      |
    +=====+===========+====================================+==============================+
    | i   | int       | decimal digits, then ``e``         | ``-1`` -> ``i-1e``           |
    | I   | int       | as ``i`` (decoded, never produced) | ``I123e`` -> ``123``         |
    | f   | float     | ``repr(float)``, then ``e``        | ``1e+16`` -> ``f1e+16e``     |
    | b   | bool      | ``1`` or ``0``                     | ``True`` -> ``b1``           |
    | n   | None      | (none)                             | ``n``                        |
    | s   | str/bytes | byte length, ``:``, raw bytes      | ``"é"`` -> ``s2:\\xc3\\xa9``   |
    | u   | str       | as ``s`` (decoded, never produced) | ``u3:abc`` -> ``'abc'``      |
    | l   | list      | items, then ``e``                  | ``[1]`` -> ``li1ee``         |
    | t   | tuple     | items, then ``e``                  | ``(1,)`` -> ``ti1ee``        |
    | d   | dict      | key, value, ..., then ``e``        | ``{1: "x"}`` -> ``di1es1:xe`` |
    | za  | datetime  | tuple (y, m, d, H, M, S, us, None) | ``zati2024e...ene``          |
    | zd  | date      | tuple (y, m, d)                    | ``zdti2024ei2ei29ee``        |
    | zt  | time      | tuple (H, M, S, us, None)          | ``ztti13ei14ei15ei0ene``     |
    +-----+-----------+------------------------------------+------------------------------+

Encoding dispatches on the *exact* type like DIRAC: subclasses (``OrderedDict``,
``IntEnum``...), ``set``, ``bytearray`` and aware datetimes are refused.

Decoding is DIRAC-compatible (lax ints such as ``i+5e``, any non-``0`` byte after
``b`` is True, ``bytes`` come back as ``str`` with ``surrogateescape``, trailing
bytes ignored) but bounded (``max_size``, ``max_depth``), stricter where DIRAC
would silently return garbage (a string body shorter than its length, a
non-digit string length) and raises only ``ProtocolError``.

Floats with an exponent are decoded with DIRAC's arithmetic
``float(mantissa) * 10 ** exponent`` by default (identical values, sometimes one
ulp off the true value, denormals become 0.0); ``exact_floats=True`` uses
``float(text)`` instead.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from itertools import chain
from typing import Any

from seproxy.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from seproxy.rpc.wire.limits import DEFAULT_MAX_DEPTH, DEFAULT_MAX_SIZE

# Longest body we search for the terminating ``e`` of a number (Python's int()
# refuses more than 4300 digits anyway), and for the ``:`` of a string length.
_MAX_INT_TEXT = 4400
_MAX_FLOAT_TEXT = 1100
_MAX_LEN_DIGITS = 20
# Python's float(10 ** n) overflows beyond this; DIRAC raises OverflowError too.
_MAX_FLOAT_EXPONENT = 308

_E, _COLON, _ZERO, _PLUS, _MINUS = b"e"[0], b":"[0], b"0"[0], b"+"[0], b"-"[0]


# --------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------
def _enc_int(value: int, out: list) -> None:
    out.append(b"i%de" % value)


def _enc_float(value: float, out: list) -> None:
    out.append(b"f" + repr(value).encode() + b"e")


def _enc_bool(value: bool, out: list) -> None:
    out.append(b"b1" if value else b"b0")


def _enc_none(_value: None, out: list) -> None:
    out.append(b"n")


def _enc_str(value: str, out: list) -> None:
    raw = value.encode("utf-8")
    out.append(b"s%d:" % len(raw))
    out.append(raw)


def _enc_bytes(value: bytes, out: list) -> None:
    out.append(b"s%d:" % len(value))
    out.append(value)


def _enc_items(values: Any, out: list) -> None:
    """Encode a sequence of values; str and int inline (the common case)."""
    append = out.append
    for item in values:
        kind = type(item)
        if kind is str:
            raw = item.encode("utf-8")
            append(b"s%d:%s" % (len(raw), raw))
        elif kind is int:
            append(b"i%de" % item)
        else:
            _ENCODERS[kind](item, out)


def _enc_list(value: list, out: list) -> None:
    out.append(b"l")
    _enc_items(value, out)
    out.append(b"e")


def _enc_tuple(value: tuple, out: list) -> None:
    out.append(b"t")
    _enc_items(value, out)
    out.append(b"e")


def _enc_dict(value: dict, out: list) -> None:
    out.append(b"d")
    _enc_items(chain.from_iterable(value.items()), out)  # key, value, key, value...
    out.append(b"e")


def _naive(value: Any) -> None:
    if value.tzinfo is not None:
        raise KeyError(type(value.tzinfo))


def _enc_datetime(value: _dt.datetime, out: list) -> None:
    _naive(value)
    out.append(b"za")
    _enc_tuple((value.year, value.month, value.day, value.hour, value.minute,
                value.second, value.microsecond, None), out)


def _enc_date(value: _dt.date, out: list) -> None:
    out.append(b"zd")
    _enc_tuple((value.year, value.month, value.day), out)


def _enc_time(value: _dt.time, out: list) -> None:
    _naive(value)
    out.append(b"zt")
    _enc_tuple((value.hour, value.minute, value.second, value.microsecond, None), out)


_ENCODERS: dict[type, Any] = {
    int: _enc_int,
    float: _enc_float,
    bool: _enc_bool,
    type(None): _enc_none,
    str: _enc_str,
    bytes: _enc_bytes,
    list: _enc_list,
    tuple: _enc_tuple,
    dict: _enc_dict,
    _dt.datetime: _enc_datetime,
    _dt.date: _enc_date,
    _dt.time: _enc_time,
}


def encode_parts(value: Any) -> list[bytes]:
    """Encode ``value`` as a list of byte strings (``bytes`` values are not copied)."""
    out: list[bytes] = []
    try:
        _ENCODERS[type(value)](value, out)
    except KeyError as exc:
        what = exc.args[0] if exc.args else "?"
        name = what.__name__ if isinstance(what, type) else repr(what)
        raise LocalProtocolError(f"DEncode cannot encode a value of type {name}") from None
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"DEncode cannot encode a str that is not valid Unicode: {exc}") from None
    except ValueError as exc:  # int with more digits than Python prints
        raise LocalProtocolError(f"DEncode cannot encode value: {exc}") from None
    except RecursionError:
        raise LocalProtocolError("DEncode cannot encode value: nested too deeply (or recursive)") from None
    return out


def encode(value: Any) -> bytes:
    """DEncode ``value`` exactly like DIRAC; ``ProtocolError`` for unsupported values."""
    return b"".join(encode_parts(value))


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------
def _fail(pos: int, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"DEncode: {message} at offset {pos}")


def _reader(data: bytes, max_depth: int, exact: bool) -> Callable[[int, int], tuple[Any, int]]:
    """Build the recursive ``value(pos, depth) -> (value, next_pos)`` reader for ``data``.

    Closures keep ``data`` and the bounds in fast cell variables; strings, ints,
    bools and None are decoded inline inside containers (the common case).
    """
    size = len(data)
    find = data.find

    def number_text(pos: int, limit: int, what: str) -> tuple[bytes, int]:
        end = find(b"e", pos + 1, pos + 1 + limit)
        if end < 0:
            raise _fail(pos, f"{what} without terminating 'e'")
        return data[pos + 1:end], end

    def int_(pos: int) -> tuple[int, int]:
        text, end = number_text(pos, _MAX_INT_TEXT, "integer")
        try:
            return int(text), end + 1
        except ValueError:
            raise _fail(pos, f"invalid integer {text[:40]!r}") from None

    def str_(pos: int) -> tuple[str, int]:
        colon = find(b":", pos + 1, pos + 2 + _MAX_LEN_DIGITS)
        digits = data[pos + 1:colon]
        if colon < 0 or not digits.isdigit():
            raise _fail(pos, "string length is not digits followed by ':'")
        start = colon + 1
        end = start + int(digits)
        if end > size:
            raise _fail(pos, f"truncated string: declares {int(digits)} bytes, only {size - start} left")
        return data[start:end].decode("utf-8", "surrogateescape"), end

    def float_(pos: int) -> tuple[float, int]:
        text, end = number_text(pos, _MAX_FLOAT_TEXT, "float")
        try:
            if end + 1 < size and data[end + 1] in (_PLUS, _MINUS):
                exp_text, exp_end = number_text(end, _MAX_FLOAT_TEXT, "float exponent")
                if exact:
                    return float(data[pos + 1:exp_end].decode()), exp_end + 1
                mantissa = float(text.decode())
                exponent = int(exp_text.decode())
                if exponent > _MAX_FLOAT_EXPONENT:
                    raise _fail(pos, f"float exponent {exponent} out of range")
                return mantissa * 10 ** exponent, exp_end + 1
            return float(text.decode()), end + 1
        except (ValueError, OverflowError):
            raise _fail(pos, f"invalid float {data[pos + 1:end + 30][:60]!r}") from None

    def container(pos: int, depth: int, is_dict: bool) -> tuple[Any, int]:
        if depth >= max_depth:
            raise _fail(pos, f"nesting deeper than {max_depth} levels")
        depth += 1
        items: list = []
        append = items.append
        start, pos = pos, pos + 1
        while True:
            if pos >= size:
                raise _fail(start, "truncated data: missing 'e' at the end of the container")
            tag = data[pos]
            if tag == _S:  # inline str_() and int_(): most items are strings and ints
                colon = find(b":", pos + 1, pos + 2 + _MAX_LEN_DIGITS)
                digits = data[pos + 1:colon]
                end = colon + 1 + int(digits) if colon > 0 and digits.isdigit() else -1
                if end < 0 or end > size:
                    item, pos = str_(pos)  # raises the precise error
                else:
                    append(data[colon + 1:end].decode("utf-8", "surrogateescape"))
                    pos = end
                continue
            if tag == _I:
                end = find(b"e", pos + 1, pos + 1 + _MAX_INT_TEXT)
                if end > 0:
                    try:
                        append(int(data[pos + 1:end]))
                        pos = end + 1
                        continue
                    except ValueError:
                        pass
                item, pos = int_(pos)  # raises the precise error
            if tag == _E:
                break
            if tag == _N:
                item, pos = None, pos + 1
            else:
                item, pos = value(pos, depth)
            append(item)
        if not is_dict:
            return items, pos + 1
        if len(items) % 2:
            raise _fail(start, "dict with a key but no value")
        try:
            return dict(zip(items[::2], items[1::2], strict=False)), pos + 1
        except TypeError:
            bad = next(k for k in items[::2] if not _hashable(k))
            raise _fail(start, f"unhashable dict key of type {type(bad).__name__}") from None

    def value(pos: int, depth: int) -> tuple[Any, int]:
        if pos >= size:
            raise _fail(pos, "truncated data, a value was expected")
        tag = data[pos]
        if tag == _S or tag == _U:
            return str_(pos)
        if tag == _D:
            return container(pos, depth, True)
        if tag == _L:
            return container(pos, depth, False)
        if tag == _I or tag == _BIG_I:
            return int_(pos)
        if tag == _B:
            if pos + 1 >= size:
                raise _fail(pos, "truncated bool")
            return data[pos + 1] != _ZERO, pos + 2
        if tag == _N:
            return None, pos + 1
        if tag == _F:
            return float_(pos)
        if tag == _T:
            items, pos = container(pos, depth, False)
            return tuple(items), pos
        if tag == _Z:
            return datetime_(pos, depth)
        raise _fail(pos, f"unknown type tag {bytes([tag])!r}")

    def datetime_(pos: int, depth: int) -> tuple[Any, int]:
        if pos + 1 >= size:
            raise _fail(pos, "truncated date/time")
        kind = _DT_KINDS.get(data[pos + 1])
        if kind is None:
            raise _fail(pos, f"unknown date/time kind {data[pos + 1:pos + 2]!r}")
        if depth >= max_depth:
            raise _fail(pos, f"nesting deeper than {max_depth} levels")
        fields, end = value(pos + 2, depth + 1)
        if type(fields) not in (list, tuple):
            raise _fail(pos, f"date/time fields must be a list or tuple, not {type(fields).__name__}")
        try:
            return kind(*fields), end
        except (TypeError, ValueError, OverflowError) as exc:
            raise _fail(pos, f"invalid date/time fields: {exc}") from None

    return value


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


(_S, _U, _D, _L, _I, _BIG_I, _B, _N, _F, _T, _Z) = b"sudliIbnftz"
_DT_KINDS = {b"a"[0]: _dt.datetime, b"d"[0]: _dt.date, b"t"[0]: _dt.time}
#: First bytes that DEncode can decode (the mixed decoder uses it).
TAGS = frozenset(b"sudliIbnftz")


def as_bytes(data: Any, codec: str) -> bytes:
    """Accept bytes-like input; anything else is a ProtocolError."""
    if type(data) is bytes:
        return data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ProtocolError(f"{codec}: payload must be bytes, not {type(data).__name__}")


def decode(data: bytes | bytearray | memoryview, *, max_depth: int = DEFAULT_MAX_DEPTH,
           max_size: int = DEFAULT_MAX_SIZE, exact_floats: bool = False) -> tuple[Any, int]:
    """Decode one value from ``data``: ``(value, bytes_consumed)``; trailing bytes are ignored."""
    data = as_bytes(data, "DEncode")
    if not data:
        raise RemoteProtocolError("DEncode: empty payload")
    if len(data) > max_size:
        raise RemoteProtocolError(f"DEncode: payload of {len(data)} bytes exceeds the maximum of {max_size}")
    try:
        return _reader(data, max_depth, exact_floats)(0, 0)
    except RecursionError:
        raise RemoteProtocolError("DEncode: nesting too deep for the interpreter stack") from None
