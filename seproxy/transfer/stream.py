"""Sans-IO state machines of the FileHelper data stream (PROTOCOL.md 6.3).

No sockets here: the I/O shell (:mod:`seproxy.transfer.filehelper`) feeds decoded
messages in and sends the messages these machines hand back.

Messages (values before encoding; ``S_OK(v)`` is ``{"OK": True, "Value": v}``):

+------------------+--------------------------------------------+---------------------------------+
| direction        | message                                    | meaning                         |
+==================+============================================+=================================+
| sender→receiver  | ``S_OK([True, <bytes>])``                  | data chunk (≤ chunk size)       |
| sender→receiver  | ``S_OK([False, <md5hex>])``                | end of file; md5 of nothing     |
|                  | (+ ``"Adler32": "<8 hex>"``, extension)    | when the checksum is disabled   |
| sender→receiver  | ``S_OK([False, ""]) + AbortTransfer: True``| sender stops early              |
| sender→receiver  | ``S_ERROR(msg)``                           | sender gives up                 |
| receiver→sender  | ``S_OK()``                                 | ack of one chunk                |
| receiver→sender  | ``S_OK() + AbortTransfer: True``           | receiver stops early            |
| receiver→sender  | ``S_ERROR(msg)``                           | receiver gives up               |
+------------------+--------------------------------------------+---------------------------------+

DIRAC's stream is stop-and-wait (``window == 1``). With the seproxy extension
(docs/PROTOCOL-EXTENSIONS.md) up to ``window`` chunks may be unacknowledged, and a
sender that is stopped by the receiver always ends the stream with a terminator
(abort message) so the receiver can drain the chunks still in flight.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from seproxy.checksum import adler32
from seproxy.errors import RemoteProtocolError
from seproxy.returnvalues import unwrap

#: Raw file bytes per chunk in DIRAC's stream (``FileHelper.packetSize``).
DIRAC_CHUNK_SIZE = 1048576
#: Hex MD5 of no bytes: what a sender with a disabled checksum announces.
EMPTY_MD5 = hashlib.md5(b"").hexdigest()

#: Exact DIRAC strings (PROTOCOL.md 6.3, DIRAC's spelling).
MSG_CRC = "Error in the file CRC"
MSG_EXCEEDED = "Exceeded maximum file size"
MSG_EXCEEDED_LOCAL = "Received file exceeded maximum size of {} bytes"
MSG_INCOMPLETE = "Incomplete transfer"
MSG_ADLER_MISMATCH = "Error in the file CRC (adler32)"


def ack() -> dict[str, Any]:
    return {"OK": True, "Value": None}


def abort_ack() -> dict[str, Any]:
    return {"OK": True, "Value": None, "AbortTransfer": True}


def abort_message() -> dict[str, Any]:
    return {"OK": True, "Value": [False, ""], "AbortTransfer": True}


def error_message(message: str) -> dict[str, Any]:
    return {"OK": False, "Errno": 0, "Message": message}


def chunk_message(data: bytes) -> dict[str, Any]:
    return {"OK": True, "Value": [True, data]}


def is_abort(message: Any) -> bool:
    return isinstance(message, dict) and bool(message.get("AbortTransfer"))


def as_bytes(data: Any) -> bytes | memoryview:
    """Chunk data as bytes: DEncode gives ``str`` (surrogateescape), JSON gives ``bytes``."""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise RemoteProtocolError(f"Invalid transfer chunk: expected bytes, got {type(data).__name__}")


class Checksums:
    """Running MD5 (DIRAC) and, when negotiated, adler32 of the streamed bytes."""

    __slots__ = ("adler", "md5", "use_adler", "use_md5")

    def __init__(self, *, md5: bool = True, adler32: bool = False) -> None:
        self.use_md5 = md5
        self.use_adler = adler32
        self.md5 = hashlib.md5()
        self.adler = 1

    def update(self, data: bytes | memoryview) -> None:
        if self.use_md5:
            self.md5.update(data)
        if self.use_adler:
            self.adler = adler32(data, self.adler)

    def md5_hex(self) -> str:
        return self.md5.hexdigest()

    def adler_hex(self) -> str:
        return f"{self.adler & 0xFFFFFFFF:08x}"


# ----------------------------------------------------------------- events


@dataclass(frozen=True)
class Data:
    """Receiver: a chunk arrived (already acked unless a reply says otherwise)."""

    data: bytes | memoryview


@dataclass(frozen=True)
class EndOfFile:
    """Receiver: the sender finished; ``ok`` is False on a checksum mismatch."""

    ok: bool
    message: str = ""


@dataclass(frozen=True)
class Aborted:
    """The peer stopped the stream early (AbortTransfer)."""


@dataclass(frozen=True)
class PeerError:
    """The peer sent an S_ERROR in place of the expected message."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Acked:
    """Sender: one chunk was acknowledged."""


@dataclass(frozen=True)
class SizeExceeded:
    """Receiver: more than ``max_size`` bytes arrived."""

    max_size: int


Event = Data | EndOfFile | Aborted | PeerError | Acked | SizeExceeded


NOT_AN_ENVELOPE = "Invalid transfer message: not an S_OK/S_ERROR structure"


def _check_envelope(message: Any) -> dict[str, Any]:
    if not unwrap(message).valid:
        raise RemoteProtocolError(NOT_AN_ENVELOPE)
    return message


class StreamReceiver:
    """The receiving end: verifies, acks and limits incoming chunks.

    ``handle(message)`` returns ``(event, replies)``; the caller sends ``replies`` in
    order. ``max_size`` 0 means no limit.
    """

    def __init__(self, *, checksum: bool = True, max_size: int = 0, adler32: bool = False,
                 drain_on_stop: bool = False) -> None:
        self.checksum_enabled = checksum
        self.sums = Checksums(md5=checksum, adler32=adler32)
        self.max_size = max_size
        self.received = 0
        self.finished = False   # EOF/abort seen, or error/abort sent (DIRAC's finishedTransmission)
        self.eof = False
        self.drain_on_stop = drain_on_stop

    def handle_chunk(self, data: bytes | memoryview) -> tuple[Event, list[dict[str, Any]]]:
        """Fast path for a decoded data chunk (``codec.decode_chunk``).

        The caller sends the replies, then passes a :class:`Data` event's bytes to
        :meth:`absorb` (so the ack goes out before the checksum work: the sender's
        next chunk travels while this one is hashed and written).
        """
        if self.finished:
            raise RemoteProtocolError("Invalid transfer message: data after the end of the stream")
        self.received += len(data)
        replies = [ack()]
        if self.max_size > 0 and self.received > self.max_size:
            replies.append(error_message(MSG_EXCEEDED))
            self.finished = True
            return SizeExceeded(self.max_size), replies
        return Data(data), replies

    def absorb(self, data: bytes | memoryview) -> None:
        """Add the bytes of a :class:`Data` event to the running checksums."""
        self.sums.update(data)

    def handle(self, message: Any) -> tuple[Event, list[dict[str, Any]]]:
        message = _check_envelope(message)
        if is_abort(message):
            self.finished = self.eof = True
            return Aborted(), [ack()]
        if not message["OK"]:
            return PeerError(message), []
        value = message.get("Value")
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise RemoteProtocolError("Invalid transfer message: expected [flag, data]")
        if value[0]:
            return self.handle_chunk(as_bytes(value[1]))
        self.finished = self.eof = True
        if self.checksum_enabled and not self._matches(message):
            return EndOfFile(False, MSG_CRC), []
        if self.sums.use_adler and message.get("Adler32") != self.sums.adler_hex():
            return EndOfFile(False, MSG_ADLER_MISMATCH), []
        return EndOfFile(True), []

    def _matches(self, message: dict[str, Any]) -> bool:
        announced = message["Value"][1]
        if isinstance(announced, bytes):
            announced = announced.decode("ascii", "replace")
        return self.sums.md5_hex() == announced

    def stop_replies(self, message: str | None = None) -> list[dict[str, Any]]:
        """Replies that stop the sender: an error, or (``None``) an abort ack."""
        self.finished = True
        return [error_message(message)] if message is not None else [abort_ack()]

    @staticmethod
    def is_terminator(message: Any) -> bool:
        """True for a message that ends a stream (EOF, abort, error): drain stops here."""
        if not isinstance(message, dict):
            return False
        reply = unwrap(message)
        if is_abort(message) or not reply.ok:
            return True
        value = reply.value
        return isinstance(value, (list, tuple)) and len(value) == 2 and not value[0]


class StreamSender:
    """The sending end: hashes chunks, tracks the acks in flight."""

    def __init__(self, *, checksum: bool = True, window: int = 1, adler32: bool = False) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.checksum_enabled = checksum
        self.sums = Checksums(md5=checksum, adler32=adler32)
        self.window = window
        self.in_flight = 0
        self.sent = 0
        self.finished = False   # EOF, error or abort sent, or abort received
        self.stopped = False    # the receiver stopped us (error or abort ack)
        self.terminated = False  # our terminator (EOF, error or abort) is sent: the stream is over

    @property
    def can_send(self) -> bool:
        return self.in_flight < self.window and not self.stopped

    def prepare(self, data: bytes | memoryview) -> None:
        """A chunk about to be sent: checksum it (may run before the previous ack)."""
        self.sums.update(data)

    def frame_sent(self, size: int) -> None:
        self.sent += size
        self.in_flight += 1

    def chunk_sent(self, data: bytes | memoryview) -> None:
        self.prepare(data)
        self.frame_sent(len(data))

    def handle_reply(self, message: Any) -> Event:
        message = _check_envelope(message)
        self.in_flight = max(0, self.in_flight - 1)
        if not message["OK"]:
            self.stopped = self.finished = True
            return PeerError(message)
        if is_abort(message):
            self.stopped = self.finished = True
            return Aborted()
        return Acked()

    def eof_message(self) -> dict[str, Any]:
        self.finished = self.terminated = True
        digest = self.sums.md5_hex() if self.checksum_enabled else EMPTY_MD5
        message: dict[str, Any] = {"OK": True, "Value": [False, digest]}
        if self.sums.use_adler:
            message["Adler32"] = self.sums.adler_hex()
        return message

    def error_message(self, text: str) -> dict[str, Any]:
        self.finished = self.terminated = True
        return error_message(text)

    def abort_message(self) -> dict[str, Any]:
        self.finished = self.terminated = True
        return abort_message()
