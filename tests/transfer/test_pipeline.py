"""Helper threads of a stream (seproxy.transfer.pipeline): order, errors, bounded buffers."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import os
import threading

import pytest

from seproxy.transfer import pipeline
from seproxy.transfer.filehelper import FileHelper, StreamOptions

KIB = 1024
OPTIONS = [StreamOptions(chunk_size=64 * KIB),      # DIRAC's stop-and-wait, small chunks
           StreamOptions(chunk_size=64 * KIB, window=4, adler32=True, md5=False, binary=True)]


def helpers(pair, options, encoding="dencode"):
    client, server = pair
    receiver = FileHelper(server, encoding, options=options)
    receiver.setDirection("fromClient")
    return FileHelper(client, encoding, options=options), receiver


def test_writer_keeps_order_and_reports_the_first_error():
    seen, absorbed = [], []

    def write(chunk):
        if chunk == b"bad":
            raise OSError(errno.ENOSPC, "No space left on device")
        seen.append(chunk)

    writer = pipeline.ChunkWriter(absorbed.append, write)
    for index in range(50):
        writer.submit(b"%d" % index)
    writer.finish()
    assert seen == absorbed == [b"%d" % index for index in range(50)]
    failing = pipeline.ChunkWriter(absorbed.append, write)
    failing.submit(b"bad")
    with pytest.raises(OSError, match="No space left"):
        failing.finish()


def test_reader_reads_ahead_in_order_and_stops_on_close():
    source = io.BytesIO(os.urandom(40 * KIB + 5))
    reader = pipeline.ChunkReader(source.readinto, bytes, 4 * KIB)
    parts = []
    while True:
        buffer, prepared = reader.next()
        if prepared is None:
            break
        parts.append(prepared)
        reader.release(buffer)
    reader.close()
    assert b"".join(parts) == source.getvalue() and len(parts) == 11
    endless = pipeline.ChunkReader(lambda view: len(view), bytes, 4 * KIB)
    endless.next()                 # its buffers are all handed out: it waits for one
    endless.close()                # and still ends


def test_reader_error_comes_out_of_next():
    def readinto(view):
        raise OSError(errno.EIO, "Input/output error")

    reader = pipeline.ChunkReader(readinto, bytes, KIB)
    with pytest.raises(OSError, match="Input/output"):
        reader.next()
    reader.close()


class FailingSink:
    """Writes the first ``good`` chunks, then fails like a full disk."""

    def __init__(self, good: int) -> None:
        self.good, self.data = good, io.BytesIO()

    def write(self, chunk) -> None:
        if self.good == 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.good -= 1
        self.data.write(chunk)


@pytest.mark.parametrize("options", OPTIONS)
def test_write_error_mid_stream_stops_the_sender(transport_pair, background, options):
    sender, receiver = helpers(transport_pair, options)
    sink = FailingSink(good=3)
    got = background(lambda: receiver.networkToDataSink(sink))
    sent = sender.stringToNetwork(b"z" * (options.chunk_size * 40))
    result = got.result()
    assert result["Message"] == "Error while writing received data: " \
                                "[Errno 28] No space left on device"
    assert sent["Message"] == result["Message"]       # the sender was told, not left hanging
    assert sink.data.getvalue() == b"z" * (options.chunk_size * 3)


def test_write_error_on_the_last_chunk_fails_the_receiver(transport_pair, background):
    """Found by the writer thread after the EOF: the stream is over, the receiver fails."""
    sender, receiver = helpers(transport_pair, OPTIONS[1])
    sink = FailingSink(good=2)
    got = background(lambda: receiver.networkToDataSink(sink))
    assert sender.stringToNetwork(b"e" * (OPTIONS[1].chunk_size * 3))["OK"]  # EOF sent: done
    result = got.result()
    assert not result["OK"] and "No space left on device" in result["Message"]
    assert receiver.receivedEOF()


class FailingSource(io.RawIOBase):
    """Reads ``good`` full chunks of ``b"r"``, then fails."""

    def __init__(self, good: int) -> None:
        self.good = good

    def readable(self) -> bool:
        return True

    def readinto(self, view) -> int:
        if self.good == 0:
            raise OSError(errno.EIO, "Input/output error")
        self.good -= 1
        view[:] = b"r" * len(view)
        return len(view)


@pytest.mark.parametrize("options", OPTIONS)
def test_read_error_mid_stream_reaches_the_receiver(transport_pair, background, options):
    sender, receiver = helpers(transport_pair, options)
    got = background(lambda: receiver.networkToString())
    sent = sender.DataSourceToNetwork(FailingSource(good=5))
    message = "Error while reading data to send: [Errno 5] Input/output error"
    assert sent["Message"] == f"Error while sending file: {message}" or sent["Message"] == message
    assert got.result()["Message"] == message


@pytest.mark.parametrize("options", OPTIONS)
def test_receive_buffers_are_recycled_and_bounded(transport_pair, background, options):
    """Chunks handed to the writer thread keep their buffer; at most DEPTH + 3 exist
    (queued, in work, waiting to be queued, and the transport's next one)."""
    # chunks larger than one socket read, so that they go to the transport's body buffer
    options = dataclasses.replace(options, chunk_size=512 * KIB)
    data = os.urandom(options.chunk_size * 12 + 7)
    sender, receiver = helpers(transport_pair, options)
    buffers: dict[int, object] = {}
    sink = io.BytesIO()
    writer_threads: set[int] = set()
    receiving_thread: list[int] = []

    def write(chunk) -> None:
        view = memoryview(chunk)
        if isinstance(view.obj, bytearray):        # a body buffer (small frames are bytes)
            buffers[id(view.obj)] = view.obj       # kept alive: ids stay unique
        writer_threads.add(threading.get_ident())
        sink.write(view)

    class Sink(io.RawIOBase):                      # an io sink: gets the views themselves
        def writable(self) -> bool:
            return True

        def write(self, chunk) -> int:
            write(chunk)
            return len(chunk)

    def receive():
        receiving_thread.append(threading.get_ident())
        return receiver.networkToDataSink(Sink())

    got = background(receive)
    assert sender.stringToNetwork(data)["OK"]
    assert got.result()["OK"]
    assert sink.getvalue() == data
    assert receiver.getHash() == (hashlib.md5(data).hexdigest() if options.md5 else
                                  hashlib.md5(b"").hexdigest())
    assert (2 if options.window > 1 else 1) <= len(buffers) <= pipeline.DEPTH + 3
    # the first chunk is written by the receiving thread, the others by a helper
    # thread on a windowed stream (DIRAC's stop-and-wait stream writes inline)
    assert receiving_thread[0] in writer_threads
    assert len(writer_threads) == (2 if options.window > 1 else 1)
