"""The I/O shell of the transfer stream: DIRAC's ``FileHelper`` (PROTOCOL.md 6.3, 6.7).

A handler gets one bound to its connection as ``fileHelper``; the TransferClient
builds one per transfer. The wire rules live in :mod:`seproxy.transfer.stream`
(sans-IO); this module only moves bytes between a :class:`Transport` and files,
with memory bounded by a few chunks whatever the file size:

* sending reads each chunk into a recycled buffer and hands the transport the
  frame as parts (``codec.encode_chunk_parts``), so a DEncode chunk (or a binary
  one, extension) is never copied in user space; JSON chunks are base64;
* receiving reads each large frame straight into the transport's body buffer
  (``Transport.receive_frame_view``), ``codec.decode_chunk`` cuts the chunk out as a
  ``memoryview``, and that view is hashed and written without a copy
  (``receive_stream``'s ``write`` must not keep it: io objects never do);
* for windowed streams (extension) of more than one chunk, reading + checksum
  (sending) and checksum + writing (receiving) run on a helper thread
  (:mod:`seproxy.transfer.pipeline`) while this thread does the network side.

DIRAC-facing methods (``networkToFD``, ``FDToNetwork``, ...) return S_OK/S_ERROR;
the ``*_stream`` methods underneath raise :class:`TransferError`/``TransportError``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from seproxy.errors import RemoteProtocolError, SeproxyError, TransferError, TransportError
from seproxy.returnvalues import S_ERROR, S_OK, unwrap
from seproxy.rpc.connection import Connection
from seproxy.rpc.wire import codec
from seproxy.transfer import bulk, pipeline, stream
from seproxy.transfer.stream import (
    DIRAC_CHUNK_SIZE,
    Aborted,
    Acked,
    Data,
    EndOfFile,
    PeerError,
    SizeExceeded,
    StreamReceiver,
    StreamSender,
)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class StreamOptions:
    """What the two ends agreed on (DIRAC: the defaults; seproxy peers: negotiated)."""

    chunk_size: int = DIRAC_CHUNK_SIZE
    window: int = 1
    adler32: bool = False
    md5: bool = True
    #: data chunks as DEncode chunk frames whatever the connection's encoding
    binary: bool = False

    @property
    def extended(self) -> bool:
        return (self.window > 1 or self.chunk_size != DIRAC_CHUNK_SIZE or self.adler32
                or self.binary)

    def frame_limit(self) -> int:
        # a base64 chunk in JSON plus its envelope; no legitimate frame is larger
        return self.chunk_size * 4 // 3 + 65536


DIRAC_OPTIONS = StreamOptions()


class StreamResult(TransferError):
    """The peer ended the stream with an S_ERROR; ``result`` is handed back as is."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(str(result.get("Message", "")))
        self.result = result


class FileHelper:
    """DIRAC's FileHelper: one transfer stream over one transport."""

    _valid_directions = ("toClient", "fromClient", "receive", "send")
    _direction_map: ClassVar[dict[str, str]] = {"toClient": "send", "fromClient": "receive"}

    def __init__(self, oTransport: Connection | None = None, encoding: str | bool | None = None,
                 checkSum: bool = True, *, options: StreamOptions = DIRAC_OPTIONS,
                 progress: Progress | None = None) -> None:
        if isinstance(encoding, bool):          # DIRAC's FileHelper(transport, checkSum)
            checkSum, encoding = encoding, None
        self.oTransport = oTransport
        self.encoding = encoding
        self.options = options
        self.progress = progress
        self.packetSize = options.chunk_size
        # the receiver's codec.decode_chunk takes either encoding's chunk frame
        self._chunk_encoding = "dencode" if options.binary else encoding
        self.direction: str | bool = False
        self.bFinishedTransmission = False
        self.bReceivedEOF = False
        self.bErrorInMD5 = False
        self._checksum = checkSum
        self._hash = stream.EMPTY_MD5
        self._adler = 1
        self._sent_sums: stream.Checksums | None = None    # sendData's running checksums
        self._bytes = 0
        self._stopped_peer = False       # we stopped the peer: a window may still be in flight
        self.peer_gone = False           # the peer sent an error or the connection broke
        self._acks: dict[str | None, bytes] = {}

    # ------------------------------------------------------------ DIRAC accessors

    def setTransport(self, oTransport: Any) -> None:
        self.oTransport = oTransport

    def setDirection(self, direction: str) -> None:
        if direction in self._valid_directions:
            self.direction = self._direction_map.get(direction, direction)

    def disableCheckSum(self) -> None:
        self._checksum = False

    def enableCheckSum(self) -> None:
        self._checksum = True

    def getHash(self) -> str:
        return self._hash

    def getTransferedBytes(self) -> int:
        return self._bytes

    def finishedTransmission(self) -> bool:
        return self.bFinishedTransmission

    def receivedEOF(self) -> bool:
        return self.bReceivedEOF

    def errorInTransmission(self) -> bool:
        return self.bErrorInMD5

    @property
    def stopped_peer(self) -> bool:
        """True when this end stopped the peer mid-stream (dispatch drains after the answer)."""
        return self._stopped_peer

    # ------------------------------------------------------------ frames

    def _send(self, value: dict[str, Any]) -> None:
        self.oTransport.send_data(value, self.encoding)

    def _send_ack(self) -> None:
        frame = self._acks.get(self.encoding)
        if frame is None:
            frame = self._acks[self.encoding] = codec.encode(stream.ack(), self.encoding)
        self.oTransport.send_frame(frame)

    def _send_replies(self, replies: list[dict[str, Any]]) -> None:
        for reply in replies:
            if reply == {"OK": True, "Value": None}:
                self._send_ack()
            else:
                self._send(reply)

    def _receive(self) -> tuple[bytes | memoryview | None, Any]:
        """The next frame as (chunk data, None) on the fast path, else (None, message).

        Chunk data may be a view of the transport's receive buffer: valid until the
        next receive on this transport.
        """
        transport = self.oTransport
        try:
            receive = getattr(transport, "receive_frame_view", None) or transport.receive_frame
            payload = receive(self.options.frame_limit())
        except TransportError:
            self.peer_gone = True
            raise
        chunk = codec.decode_chunk(payload)
        if chunk is not None:
            return chunk, None
        message = codec.decode(payload)
        reply = unwrap(message)
        if reply.valid and not reply.ok:
            self.peer_gone = True
        return None, message

    def receive_any(self) -> None:
        """Read and discard one frame (a chunk still on the way after a stop)."""
        self._receive()

    # ------------------------------------------------------------ receiving

    def _receiver(self, max_size: int) -> StreamReceiver:
        return StreamReceiver(checksum=self._checksum and self.options.md5, max_size=max_size,
                              adler32=self._checksum and self.options.adler32,
                              drain_on_stop=self.options.extended)

    def receive_stream(self, write: Callable[[Any], Any], max_size: int = 0) -> int:
        """Receive the stream into ``write``; returns the byte count. Raises on failure.

        ``write`` gets bytes-like chunks that are only valid during the call (views of
        a reused buffer): it must write or copy them, not keep them. From the second
        chunk on, checksum and ``write`` run on a helper thread (``pipeline``), in
        order, while this thread acks and receives the next chunk.
        """
        receiver = self._receiver(max_size)
        self.bReceivedEOF = self.bErrorInMD5 = False
        sink = pipeline.ChunkSink(self.oTransport, receiver, write,
                                  threaded=self.options.window > 1)
        late_error: BaseException | None = None
        try:
            while True:
                chunk, message = self._receive()
                if chunk is None:
                    late_error = sink.finish()     # every chunk checksummed before the EOF test
                    event, replies = receiver.handle(message)
                else:
                    event, replies = receiver.handle_chunk(chunk)
                self._send_replies(replies)
                if isinstance(event, Data):
                    try:
                        sink.put(event.data)
                    except (OSError, TransferError) as exc:
                        message = _write_error_text(exc)
                        self._send(stream.error_message(message))
                        self._stop_peer(receiver)
                        raise TransferError(message) from exc
                    if self.progress:
                        self.progress(receiver.received)
                    continue
                if isinstance(event, SizeExceeded):
                    self._stop_peer(receiver)
                    raise TransferError(stream.MSG_EXCEEDED_LOCAL.format(event.max_size))
                if isinstance(event, PeerError):
                    raise StreamResult(event.result)
                self.bReceivedEOF = True
                self.bFinishedTransmission = True
                if late_error is not None:         # the stream is over: nothing to stop
                    raise TransferError(_write_error_text(late_error)) from late_error
                if isinstance(event, EndOfFile) and not event.ok:
                    self.bErrorInMD5 = True
                    raise TransferError(event.message)
                return receiver.received
        finally:
            sink.close()
            self._bytes = receiver.received
            self._hash = receiver.sums.md5_hex()
            if receiver.finished:
                self.bFinishedTransmission = True

    def _stop_peer(self, receiver: StreamReceiver) -> None:
        self.bFinishedTransmission = True
        self._stopped_peer = True
        if receiver.drain_on_stop:
            self.drain()

    def drain(self, max_frames: int | None = None) -> None:
        """Extension mode: discard frames until the peer's terminator (bounded by the window)."""
        budget = max_frames if max_frames is not None else self.options.window + 2
        for _ in range(budget):
            chunk, message = self._receive()
            if chunk is None and StreamReceiver.is_terminator(message):
                return

    def receiveData(self, maxBufferSize: int = 0) -> dict[str, Any]:
        """Receive one stream message; S_OK(bytes) for a chunk, S_OK("") at the end."""
        try:
            chunk, message = self._receive()
            if chunk is None and stream.is_abort(message):
                self._send_ack()
                self.bFinishedTransmission = self.bReceivedEOF = True
                return S_OK("")
            reply = unwrap(message)
            if chunk is None and not reply.ok:
                return message if reply.valid else S_ERROR(stream.NOT_AN_ENVELOPE)
            if chunk is None:
                flag, data = reply.value
                if not flag:
                    self.bReceivedEOF = self.bFinishedTransmission = True
                    return S_OK("")
                chunk = stream.as_bytes(data)
            self._send_ack()
            return S_OK(bytes(chunk))
        except (SeproxyError, KeyError, TypeError, ValueError) as exc:
            return S_ERROR(str(exc))

    def networkToDataSink(self, dataSink: Any, maxFileSize: int = 0) -> dict[str, Any]:
        if not hasattr(dataSink, "write"):
            return S_ERROR(f"{dataSink} data sink object does not have a write method")
        write = dataSink.write
        if not isinstance(dataSink, io.IOBase):
            # io objects never keep the buffer after write() returns (io's contract);
            # any other sink might, so it gets bytes of its own
            def write(data: Any, _write: Callable[[bytes], Any] = dataSink.write) -> Any:
                return _write(bytes(data))
        return self._dirac(lambda: self.receive_stream(write, maxFileSize))

    def networkToFD(self, iFD: int, maxFileSize: int = 0) -> dict[str, Any]:
        with os.fdopen(iFD, "wb", buffering=0) as sink:
            return self.networkToDataSink(sink, maxFileSize=maxFileSize)

    def networkToString(self, maxFileSize: int = 0) -> dict[str, Any]:
        sink = io.BytesIO()
        result = self.networkToDataSink(sink, maxFileSize=maxFileSize)
        return S_OK(sink.getvalue()) if result["OK"] else result

    # ------------------------------------------------------------ sending

    def _sender(self) -> StreamSender:
        return StreamSender(checksum=self._checksum and self.options.md5,
                            window=self.options.window,
                            adler32=self._checksum and self.options.adler32)

    def send_stream(self, readinto: Callable[[memoryview], int]) -> int:
        """Send what ``readinto`` yields, then EOF. Returns bytes sent; raises on failure.

        An abort from the receiver ends the stream successfully without EOF (DIRAC).
        """
        sender = self._sender()
        source = pipeline.ChunkSource(readinto, lambda chunk: self._encode(sender, chunk),
                                      self.options.chunk_size, threaded=self.options.window > 1)
        self._expect_early_answers(True)
        try:
            parts, count = self._next_chunk(source, sender)
            while count:
                while not sender.can_send and not sender.stopped:
                    self._sender_reply(sender)
                if sender.stopped:
                    break
                try:
                    self.oTransport.send_frame(parts)
                except TransportError:
                    self._answer_before_close()
                    raise
                sender.frame_sent(count)
                if self.progress:
                    self.progress(sender.sent)
                # the next chunk is read and encoded while the receiver handles this one
                parts, count = self._next_chunk(source, sender)
            # EOF takes a window slot too: in DIRAC's stream it follows the last ack
            while not sender.can_send and not sender.stopped:
                self._sender_reply(sender)
            if not sender.stopped:
                self._send(sender.eof_message())
                while sender.in_flight and not sender.stopped:
                    self._sender_reply(sender)
            elif self.options.extended and not sender.terminated:
                self._send(sender.abort_message())      # terminator: the receiver drains to it
            self.bFinishedTransmission = True
            return sender.sent
        finally:
            self._expect_early_answers(False)
            source.close()
            self._bytes = sender.sent
            self._hash = sender.sums.md5_hex()
            self._adler = sender.sums.adler

    def _encode(self, sender: StreamSender, chunk: memoryview) -> tuple[list[Any], int]:
        """Checksum and encode one chunk: ``(frame parts, size)``."""
        sender.prepare(chunk)
        return codec.encode_chunk_parts(chunk, self._chunk_encoding), chunk.nbytes

    def _next_chunk(self, source: pipeline.ChunkSource, sender: StreamSender) -> tuple[list[Any], int]:
        """The next chunk from ``source``; a read error goes to the receiver and is raised."""
        try:
            return source.next()
        except (OSError, TransferError) as exc:
            message = str(exc) if isinstance(exc, TransferError) else (
                f"Error while reading data to send: {exc}")
            self._send(sender.error_message(message))
            self.bFinishedTransmission = True
            raise TransferError(message) from exc

    def _expect_early_answers(self, enabled: bool) -> None:
        """A DIRAC receiver refusing a stop-and-wait stream answers and closes while a
        chunk is on the way: the transport keeps that answer readable (see
        ``Transport.expect_early_answers``). A seproxy peer (extension) never closes
        early: it drains to the terminator."""
        if not self.options.extended:
            expect = getattr(self.oTransport, "expect_early_answers", None)
            if expect is not None:
                expect(enabled)

    def _answer_before_close(self) -> None:
        """A write failed: a receiver that answered early and closed (DIRAC does) may have
        left its answer in our receive buffer; that answer is the real outcome."""
        try:
            self.oTransport.settimeout(5.0)
            chunk, message = self._receive()
        except SeproxyError:
            return
        reply = unwrap(message)
        if chunk is None and reply.valid:
            raise StreamResult(message) if not reply.ok else StreamResult(
                stream.error_message("Transfer stopped by the receiver"))

    def _sender_reply(self, sender: StreamSender) -> None:
        chunk, message = self._receive()
        if chunk is not None:
            raise RemoteProtocolError("Invalid transfer message: data chunk in place of an ack")
        event = sender.handle_reply(message)
        if isinstance(event, PeerError):
            if self.options.extended and not sender.terminated:
                # one terminator per stream: after our EOF (or error) the receiver's drain
                # already ends there; a second one would arrive after it answered and
                # closed (a reset, or this write failing in place of its answer)
                with contextlib.suppress(TransportError):
                    self._send(sender.abort_message())
            raise StreamResult(event.result)
        if isinstance(event, Aborted):
            self.bFinishedTransmission = True
        assert isinstance(event, (Acked, Aborted))

    def DataSourceToNetwork(self, dataSource: Any) -> dict[str, Any]:
        if not hasattr(dataSource, "read"):
            return S_ERROR(f"{dataSource} data source object does not have a read method")
        return self._dirac(lambda: self.send_stream(_readinto_of(dataSource)),
                           "Error while sending file: {}")

    def FDToNetwork(self, iFD: int) -> dict[str, Any]:
        return self._dirac(lambda: self.send_stream(lambda view: os.readv(iFD, [view])),
                           "Error while sending file: {}")

    def stringToNetwork(self, stringVal: str | bytes) -> dict[str, Any]:
        data = stringVal.encode("utf-8", "surrogateescape") if isinstance(stringVal, str) else stringVal
        return self._dirac(lambda: self.send_stream(io.BytesIO(data).readinto),
                           "Error while sending string: {}")

    BufferToNetwork = stringToNetwork

    def sendData(self, sBuffer: str | bytes) -> dict[str, Any]:
        """Send one chunk and return the receiver's reply (DIRAC's low-level call)."""
        try:
            data = stream.as_bytes(sBuffer)
            if self._checksum:
                if self._sent_sums is None:
                    self._sent_sums = stream.Checksums(adler32=self.options.adler32)
                self._sent_sums.update(data)
                self._hash, self._adler = self._sent_sums.md5_hex(), self._sent_sums.adler
            self._expect_early_answers(True)
            try:
                self.oTransport.send_frame(codec.encode_chunk_parts(data, self._chunk_encoding))
            finally:
                self._expect_early_answers(False)
            self._bytes += len(data)
            return self.oTransport.receive_data()
        except SeproxyError as exc:
            return S_ERROR(str(exc))

    def sendEOF(self) -> dict[str, Any]:
        message: dict[str, Any] = {"OK": True, "Value": [False, self._hash]}
        if self.options.adler32 and self._checksum:
            message["Adler32"] = f"{self._adler & 0xFFFFFFFF:08x}"
        try:
            self._send(message)
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        self.bFinishedTransmission = True
        return S_OK()

    def sendError(self, errorMsg: str) -> dict[str, Any]:
        try:
            self._send(stream.error_message(errorMsg))
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        self.bFinishedTransmission = True
        self._stopped_peer = self.direction == "receive"
        return S_OK()

    def markAsTransferred(self) -> dict[str, Any]:
        """Stop the stream early (PROTOCOL.md 6.3, "Early stop by the server")."""
        try:
            if not self.bFinishedTransmission:
                if self.direction == "receive":
                    self._receive()
                    self._send(stream.abort_ack())
                    # A stop-and-wait sender sends nothing after an abort ack (the frame
                    # it had on the way was just read); a windowed one may have more.
                    if self.options.extended:
                        self._stopped_peer = True
                        self.drain()
                else:
                    self._send(stream.abort_message())
                    self._receive()
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        finally:
            self.bFinishedTransmission = True
        return S_OK()

    # ------------------------------------------------------------ files (DIRAC helpers)

    def getFileDescriptor(self, uFile: Any, sFileMode: str) -> dict[str, Any]:
        close_after = True
        if isinstance(uFile, str):
            try:
                self.oFile = open(uFile, sFileMode.replace("b", "") + "b")
            except OSError:
                return S_ERROR(f"{uFile} can't be opened")
            fd = self.oFile.fileno()
        elif isinstance(uFile, io.IOBase):
            fd = uFile.fileno()
        elif isinstance(uFile, int) and not isinstance(uFile, bool):
            fd, close_after = uFile, False
        else:
            return S_ERROR(f"{uFile} is not a valid file.")
        result = S_OK(fd)
        result["closeAfterUse"] = close_after
        return result

    def getDataSink(self, uFile: Any) -> dict[str, Any]:
        if isinstance(uFile, str):
            try:
                sink, close_after = open(uFile, "wb"), True
            except OSError:
                return S_ERROR(f"{uFile} can't be opened")
        elif isinstance(uFile, io.IOBase):
            sink, close_after = uFile, False
        elif isinstance(uFile, int) and not isinstance(uFile, bool):
            sink, close_after = os.fdopen(uFile, "wb"), True
        elif hasattr(uFile, "write"):
            sink, close_after = uFile, False
        else:
            return S_ERROR(f"{uFile} is not a valid file.")
        result = S_OK(sink)
        result["closeAfterUse"] = close_after
        return result

    # ------------------------------------------------------------ bulk (tar) helpers

    def bulkToNetwork(self, fileList: list[str], compress: bool = True,
                      onthefly: bool = True) -> dict[str, Any]:
        return self._dirac(lambda: bulk.send_tar(self, fileList, compress, onthefly),
                           "Error while sending bulk: {}")

    def networkToBulk(self, destDir: str, compress: bool = True,
                      maxFileSize: int = 0) -> dict[str, Any]:
        return self._dirac(lambda: bulk.receive_tar(self, destDir, compress, maxFileSize))

    def bulkListToNetwork(self, iFD: int, compress: bool = True) -> dict[str, Any]:
        try:
            return S_OK(bulk.list_tar(iFD, compress))
        except TransferError as exc:
            return S_ERROR(str(exc))

    # ------------------------------------------------------------ boundary

    def _dirac(self, action: Callable[[], Any], unexpected: str = "{}") -> dict[str, Any]:
        """The one S_OK/S_ERROR conversion of this boundary."""
        try:
            action()
        except StreamResult as exc:
            return exc.result
        except SeproxyError as exc:
            return S_ERROR(str(exc))
        except OSError as exc:
            return S_ERROR(unexpected.format(exc))
        return S_OK()


def _write_error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, TransferError) else f"Error while writing received data: {exc}"


def _readinto_of(source: Any) -> Callable[[memoryview], int]:
    """A ``readinto`` for any object with ``read`` (file objects use their own)."""
    if hasattr(source, "readinto"):
        return source.readinto

    def readinto(view: memoryview) -> int:
        data = source.read(len(view))
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        view[: len(data)] = data
        return len(data)

    return readinto
