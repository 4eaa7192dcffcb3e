"""DISET frames: an incremental, sans-IO parser and the writers (PROTOCOL.md 2).

Byte layout::

    +-----------------+------------------------+-----+---------------------------+
    | optional prefix | length                 | ":" | payload                   |
    +=================+========================+=====+===========================+
    | ``dka`` (0x64   | ASCII decimal digits,  | 0x3A| exactly ``length`` bytes  |
    | 0x6B 0x61):     | at most 20; only       |     | (an encoded message,      |
    | keep-alive      | digits are accepted    |     | see codec.py)             |
    +-----------------+------------------------+-----+---------------------------+

``FrameParser`` is fed whatever the socket returned (any split, several frames
at once) and hands out ``Frame`` and ``KeepAlive`` events; bytes after a frame
stay buffered for the next one. Once a header is parsed, ``detach_body`` lets the
I/O shell read a large body straight into its own buffer (no per-read copies).
``dka`` is recognised only at a frame boundary.
A frame longer than ``max_frame_size`` is refused as soon as its length prefix
is read, before any of its body is buffered. Errors are ``ProtocolError``; after
one the parser stays failed (the connection must be closed).

Writers return the header bytes; a transport sends ``header`` then the payload
part(s) (``frame_parts``), so a large payload is never copied to add a prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seproxy.errors import ProtocolError, RemoteProtocolError
from seproxy.returnvalues import unwrap
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.limits import DEFAULT_MAX_FRAME_SIZE

KEEPALIVE_PREFIX = b"dka"
MAX_LENGTH_DIGITS = 20

Part = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete ordinary frame."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A complete keep-alive frame (``dka`` prefix); decode ``payload`` with ``parse_keepalive``."""

    payload: bytes


class FrameParser:
    """Incremental frame parser: ``feed(bytes)`` then call ``next_event()`` until ``None``."""

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._length: int | None = None  # body length once the header is parsed
        self._keepalive = False
        self._error: ProtocolError | None = None

    def feed(self, data: Part) -> None:
        """Append bytes received from the peer."""
        if self._error is not None:
            raise self._error
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes held (part of the current frame and beyond)."""
        return len(self._buf)

    @property
    def bytes_needed(self) -> int:
        """Bytes still missing to complete the current frame's body (0 if unknown or none)."""
        if self._length is None:
            return 0
        return max(0, self._length - len(self._buf))

    @property
    def frame_length(self) -> int | None:
        """Body length of the current frame once its header is parsed, else ``None``."""
        return self._length

    def peek_length(self) -> int | None:
        """Parse the next frame's header if it has arrived (the body stays buffered) and
        return its body length; ``None`` while the header is incomplete."""
        if self._error is not None:
            raise self._error
        if self._length is None:
            self._parse_header()
        return self._length

    @property
    def frame_is_keepalive(self) -> bool:
        """True when the current (header-parsed) frame is a keep-alive."""
        return self._length is not None and self._keepalive

    def detach_body(self, into: memoryview) -> int:
        """Hand the current incomplete frame body over to the caller.

        For a large frame the I/O shell reads the rest of the body itself, straight
        into its own buffer: the bytes already buffered are copied into ``into`` (at
        least ``frame_length`` bytes long), the parser forgets the frame and is back
        at a boundary. Returns the number of body bytes copied.
        """
        length = self._length
        if length is None or len(self._buf) >= length or self._error is not None:
            raise ProtocolError("No incomplete frame body to detach")
        count = len(self._buf)
        into[:count] = self._buf
        self._buf.clear()
        self._length = None
        return count

    @property
    def at_boundary(self) -> bool:
        """True when no partial frame is buffered."""
        return self._length is None and not self._buf

    def whole_frame(self, data: bytearray, count: int, below: int) -> bytes | None:
        """Fast path for an I/O shell at a frame boundary: if ``data[:count]`` is exactly
        one complete ordinary frame with a body shorter than ``below`` bytes, its payload
        (the parser is not touched). Otherwise ``None``: feed the bytes as usual, which
        applies every check."""
        if self._length is not None or self._buf or not count or data[0] == KEEPALIVE_PREFIX[0]:
            return None
        colon = data.find(b":", 0, min(count, MAX_LENGTH_DIGITS + 1))
        if colon <= 0:
            return None
        digits = data[:colon]
        if not digits.isdigit():
            return None
        length = int(digits)
        if colon + 1 + length != count or length >= below or length > self.max_frame_size:
            return None
        return bytes(data[colon + 1:count])

    def next_event(self) -> Frame | KeepAlive | None:
        """The next complete frame, or ``None`` if more bytes are needed."""
        if self._error is not None:
            raise self._error
        if self._length is None and not self._parse_header():
            return None
        length = self._length
        assert length is not None
        if len(self._buf) < length:
            return None
        with memoryview(self._buf) as view:
            payload = bytes(view[:length])
        del self._buf[:length]
        self._length = None
        return KeepAlive(payload) if self._keepalive else Frame(payload)

    def _fail(self, message: str) -> RemoteProtocolError:
        self._error = RemoteProtocolError(message)
        return self._error

    def _parse_header(self) -> bool:
        buf = self._buf
        if not buf:
            return False
        start = 0
        if buf[0] == KEEPALIVE_PREFIX[0]:
            if buf[:3] != KEEPALIVE_PREFIX[:len(buf)]:
                raise self._fail(f"Invalid frame start {bytes(buf[:3])!r}: expected a length or 'dka'")
            if len(buf) < 3:
                return False
            start = 3
        limit = start + MAX_LENGTH_DIGITS + 1
        colon = buf.find(b":", start, limit)
        digits = bytes(buf[start:colon if colon >= 0 else limit])
        if digits and not digits.isdigit():
            bad = next(bytes([c]) for c in digits if not 0x30 <= c <= 0x39)
            raise self._fail(f"Invalid frame length: non-digit byte {bad!r} in {digits[:30]!r}")
        if colon < 0:
            if len(digits) > MAX_LENGTH_DIGITS:
                raise self._fail(f"Invalid frame length: more than {MAX_LENGTH_DIGITS} digits")
            self._check_size(digits)
            return False
        if not digits:
            raise self._fail("Invalid frame length: empty (':' without digits)")
        self._check_size(digits)
        del buf[:colon + 1]
        self._length = int(digits)
        self._keepalive = start == 3
        return True

    def _check_size(self, digits: bytes) -> None:
        if digits and int(digits) > self.max_frame_size:
            raise self._fail(f"Frame of {int(digits)} bytes exceeds the maximum frame size "
                             f"of {self.max_frame_size} bytes")


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------
def part_length(part: Part) -> int:
    """Byte length of a payload part (``memoryview`` counts bytes, not items)."""
    return part.nbytes if isinstance(part, memoryview) else len(part)


def frame_header(length: int, keepalive: bool = False) -> bytes:
    """``b"[dka]<length>:"``."""
    return b"%s%d:" % (KEEPALIVE_PREFIX if keepalive else b"", length)


def frame_parts(payload: Part | Sequence[Part], keepalive: bool = False) -> list[Part]:
    """``[header, *payload parts]``: what to write, in order, without joining."""
    parts = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else list(payload)
    return [frame_header(sum(map(part_length, parts)), keepalive), *parts]


def encode_frame(payload: Part | Sequence[Part], keepalive: bool = False) -> bytes:
    """The whole frame as one bytes object (for small messages and tests)."""
    return b"".join(frame_parts(payload, keepalive))


# --------------------------------------------------------------------------------------
# Keep-alive payloads (PROTOCOL.md 2.2)
# --------------------------------------------------------------------------------------
def keepalive_payload(ka_id: str, ping: bool, encoding: str | None = None) -> bytes:
    """Payload of a PING (``ping=True``) or PONG: ``S_OK({"id": ka_id, "kaping": ping})``."""
    return codec.encode({"OK": True, "Value": {"id": ka_id, "kaping": ping}}, encoding)


def parse_keepalive(value: Any) -> tuple[Any, bool]:
    """``(id, is_ping)`` from a decoded keep-alive payload; ``ProtocolError`` like DIRAC's messages."""
    data = unwrap(value).value
    if not isinstance(data, dict) or "id" not in data:
        raise RemoteProtocolError("Invalid keep alive, missing id")
    if "kaping" not in data:
        raise RemoteProtocolError("Invalid keep alive, missing kaping")
    return data["id"], bool(data["kaping"])
