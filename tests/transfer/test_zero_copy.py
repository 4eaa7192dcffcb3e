"""Received chunks are views of the transport's reused buffer: sinks must still get intact data."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from seproxy.transfer.filehelper import FileHelper, StreamOptions

MIB = 1024 * 1024


class KeepingSink:
    """A non-io sink that keeps every object it is given (DIRAC sinks may)."""

    def __init__(self) -> None:
        self.parts: list = []

    def write(self, data) -> None:
        self.parts.append(data)


@pytest.mark.parametrize("encoding", ["json", "dencode"])
@pytest.mark.parametrize("options", [
    StreamOptions(),
    StreamOptions(window=4, chunk_size=MIB // 2, adler32=True, md5=False),
    StreamOptions(window=4, chunk_size=MIB // 2, adler32=True, md5=False, binary=True),
])
def test_sink_keeping_its_chunks_gets_bytes(transport_pair, background, encoding, options):
    client, server = transport_pair
    data = os.urandom(3 * MIB + 12345)
    sender = FileHelper(client, encoding, options=options)
    receiver = FileHelper(server, encoding, options=options)
    receiver.setDirection("fromClient")
    sink = KeepingSink()
    got = background(lambda: receiver.networkToDataSink(sink))
    assert sender.stringToNetwork(data)["OK"]
    assert got.result()["OK"]
    assert all(type(part) is bytes for part in sink.parts)
    assert b"".join(sink.parts) == data


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_io_sink_and_hash_see_every_chunk(transport_pair, background, tmp_path, encoding):
    client, server = transport_pair
    data = os.urandom(4 * MIB + 1)
    sender = FileHelper(client, encoding)
    receiver = FileHelper(server, encoding)
    receiver.setDirection("fromClient")
    sink = io.BytesIO()
    got = background(lambda: receiver.networkToDataSink(sink))
    assert sender.stringToNetwork(data)["OK"]
    assert got.result()["OK"]
    assert sink.getvalue() == data
    assert receiver.getHash() == hashlib.md5(data).hexdigest()
