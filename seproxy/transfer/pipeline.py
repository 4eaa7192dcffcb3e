"""Helper threads that overlap a stream's file and checksum work with its network I/O.

The connection thread of a transfer only decrypts, frames and acks; the work on the
bytes themselves runs on one helper thread per stream, in chunk order:

+-----------------+------------------------------+-------------------------------------+
| side            | helper thread                | connection thread                   |
+=================+==============================+=====================================+
| receiving       | checksum + ``write`` a chunk | receive frame, ack, hand chunk over |
| sending         | ``readinto`` + checksum      | take a chunk, encode, send, acks    |
+-----------------+------------------------------+-------------------------------------+

hashlib, zlib(-ng), file reads and writes release the GIL on large buffers, so the
two threads (and the peer process) really run at the same time. Memory stays
bounded: at most ``depth`` chunks are handed over and not yet done; chunk buffers
are recycled. An error in the helper thread is raised in the connection thread at
its next call. Nothing here knows the wire (see :mod:`seproxy.transfer.stream`).

:class:`ChunkSink` / :class:`ChunkSource` are what ``FileHelper`` uses: they run the
first chunk inline (one-chunk files start no thread) and switch to a
:class:`ChunkWriter` / :class:`ChunkReader` for longer streams, when ``threaded``.
``FileHelper`` asks for threads on windowed streams only (extension): measured here,
they made DIRAC's stop-and-wait stream cost more CPU (JSON: ~+15 %) for no gain,
since its sender already reads the next chunk while it waits for the ack, and its
receiver acks before it hashes and writes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from seproxy.errors import TransferError
from seproxy.rpc.connection import Connection
from seproxy.transfer.stream import StreamReceiver

_STOP = object()
#: Chunks in the hands of a helper thread (queued or in work) at most.
DEPTH = 2


class ChunkWriter:
    """Runs ``absorb(chunk)`` then ``write(chunk)`` for each submitted chunk, in order.

    A submitted chunk must stay untouched until done; the ``buffer`` given with it
    (the memory under the chunk, if it is to be reused) is then passed to ``recycle``.
    """

    def __init__(self, absorb: Callable[[Any], None], write: Callable[[Any], Any],
                 recycle: Callable[[Any], None] | None = None, depth: int = DEPTH) -> None:
        self._absorb = absorb
        self._write = write
        self._recycle = recycle
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="seproxy-transfer-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            chunk, buffer = item
            if self._error is None:
                try:
                    self._absorb(chunk)
                    self._write(chunk)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the connection thread
                    self._error = exc
            if buffer is not None and self._recycle is not None:
                self._recycle(buffer)

    def check(self) -> None:
        """Raise the error of an earlier chunk, if any."""
        if self._error is not None:
            raise self._error            # kept: later calls fail the same way

    def submit(self, chunk: Any, buffer: Any = None) -> None:
        """Hand one chunk over (blocks while ``depth`` chunks are pending)."""
        self.check()
        self._queue.put((chunk, buffer))

    def finish(self) -> None:
        """Wait until every chunk is written; raise a write error. The thread ends."""
        self.close()
        self.check()

    def close(self) -> None:
        """End the thread after the chunks already submitted (no error raised)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()


class ChunkReader:
    """Reads chunks ahead with ``readinto`` and ``prepare`` (checksum, encode) on a thread.

    ``next()`` returns ``(buffer, prepare(chunk))`` in file order, ``(buffer, None)`` at
    the end; give each buffer back with :meth:`release` once its chunk was sent.
    ``size`` is the chunk size.
    """

    def __init__(self, readinto: Callable[[memoryview], int], prepare: Callable[[memoryview], Any],
                 size: int, depth: int = DEPTH) -> None:
        self._readinto = readinto
        self._prepare = prepare
        self._free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(depth):
            self._free.put(memoryview(bytearray(size)))
        self._ready: queue.Queue[Any] = queue.Queue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seproxy-transfer-reader",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            view = self._free.get()
            if view is None:
                return
            try:
                count = self._readinto(view)
                prepared = self._prepare(view[:count]) if count else None
            except BaseException as exc:  # noqa: BLE001 - re-raised in the connection thread
                self._ready.put(exc)
                return
            self._ready.put((view, prepared))
            if prepared is None:
                return

    def next(self) -> tuple[memoryview, Any]:
        """The next ``(buffer, prepared chunk)``; ``None`` at the end; raises read errors."""
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def release(self, view: memoryview) -> None:
        """A buffer from :meth:`next` is free again (its chunk was sent)."""
        self._free.put(view)

    def close(self) -> None:
        """Stop reading ahead and end the thread."""
        self._stopped.set()
        self._free.put(None)  # type: ignore[arg-type]  # wakes a reader waiting for a buffer
        self._thread.join()


class ChunkSink:
    """Where received chunks go: checksum + ``write``, inline for the first chunk, then
    on a :class:`ChunkWriter` thread.

    A chunk that is a view of the transport's body buffer is handed over with that
    buffer (``Transport.take_body_buffer``), so the next frame is read into a spare
    one: no copy, and at most ``DEPTH + 3`` body buffers ever exist (queued,
    in work, waiting to be queued, the transport's next).
    """

    def __init__(self, transport: Connection, receiver: StreamReceiver, write: Callable[[Any], Any], *,
                 threaded: bool = True) -> None:
        self._threaded = threaded
        self._take = getattr(transport, "take_body_buffer", None)
        self._receiver = receiver
        self._write = write
        self._writer: ChunkWriter | None = None
        self._spares: list[bytearray] = []
        self._chunks = 0

    def put(self, data: Any) -> None:
        self._chunks += 1
        if self._chunks == 1 or not self._threaded:   # one-chunk files need no thread
            self._receiver.absorb(data)
            self._write(data)
            return
        if self._writer is None:
            self._writer = ChunkWriter(self._receiver.absorb, self._write,
                                                self._spares.append)
        buffer = None
        if isinstance(data, memoryview) and self._take is not None \
                and isinstance(data.obj, bytearray):
            taken = self._take(self._spares.pop() if self._spares else None)
            if taken is data.obj:
                buffer = taken                # back to the spares once written
            elif taken is not None:
                self._spares.append(taken)    # not this chunk's buffer: a spare already
        self._writer.submit(data, buffer)

    def finish(self) -> BaseException | None:
        """Wait for the chunks handed over; the write error, if one happened."""
        if self._writer is None:
            return None
        writer, self._writer = self._writer, None
        try:
            writer.finish()
        except (OSError, TransferError) as exc:
            return exc
        return None

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ChunkSource:
    """Chunks to send, as ``(frame parts, size)`` (size 0 at the end): the first read,
    checksummed and encoded inline; once a read fills a whole chunk, the rest is read
    ahead on a :class:`ChunkReader` thread."""

    def __init__(self, readinto: Callable[[memoryview], int],
                 encode: Callable[[memoryview], tuple[list[Any], int]], size: int, *,
                 threaded: bool = True) -> None:
        self._readinto = readinto
        self._encode = encode
        self._size = size
        self._view = memoryview(bytearray(size))
        self._reader: ChunkReader | None = None
        self._held: memoryview | None = None     # the reader's buffer being sent
        self._first = threaded

    def next(self) -> tuple[list[Any], int]:
        if self._reader is not None:
            if self._held is not None:
                self._reader.release(self._held)  # its chunk was sent
            self._held, prepared = self._reader.next()
            return prepared if prepared is not None else ([], 0)
        count = self._readinto(self._view)
        if not count:
            return [], 0
        prepared = self._encode(self._view[:count])   # checksummed before any read-ahead
        if self._first and count == self._size:   # a big stream: read ahead from now on
            self._reader = ChunkReader(self._readinto, self._encode, self._size)
        self._first = False
        return prepared

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
