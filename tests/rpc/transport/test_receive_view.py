"""Large frame bodies read straight into the transport's body buffer (``receive_frame_view``).

The peer is a bare socket on 127.0.0.1 that writes exact bytes in chosen pieces, so
the header/body splits the direct read has to handle really happen on the wire.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest

from seproxy.errors import ProtocolError
from seproxy.rpc import transport
from seproxy.rpc.transport.base import DIRECT_MAX, DIRECT_MIN
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.framing import encode_frame, keepalive_payload
from tests.rpc.transport.conftest import EchoServer
from tests.rpc.transport.tlshelpers import tls_cfg


@pytest.fixture
def raw_peer():
    """(our PlainTransport, the peer's bare socket) over one loopback TCP connection."""
    server = socket.create_server(("127.0.0.1", 0))
    conn = transport.connect("dip", "127.0.0.1", server.getsockname()[1], cfg=None, timeout=10)
    peer, _ = server.accept()
    server.close()
    conn.settimeout(30)
    yield conn, peer
    conn.close()
    peer.close()


def _send_pieces(peer: socket.socket, data: bytes, cuts: list[int]) -> threading.Thread:
    """Write ``data`` to the peer socket cut at ``cuts`` (separate sendall calls)."""
    def run() -> None:
        start = 0
        for cut in [*cuts, len(data)]:
            peer.sendall(data[start:cut])
            start = cut
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_large_frames_split_anywhere_and_followed_by_more(raw_peer):
    conn, peer = raw_peer
    big = os.urandom(3 * DIRECT_MIN + 5)
    edge = os.urandom(DIRECT_MIN)
    ping = encode_frame(keepalive_payload("k1", True, "dencode"), keepalive=True)
    stream = (encode_frame(big) + encode_frame(b"small") + ping + encode_frame(edge)
              + encode_frame(b"x" * (DIRECT_MIN - 1)))
    # cuts: inside the first header, in the first body, right after a body, inside the ping
    cuts = [2, 10, 100_000, len(encode_frame(big)), len(encode_frame(big)) + 9 + 4]
    writer = _send_pieces(peer, stream, cuts)
    first = conn.receive_frame_view()
    assert isinstance(first, memoryview) and first == big
    assert conn.receive_frame_view() == b"small"
    view = conn.receive_frame_view()          # the ping was answered on the way
    assert view == edge
    assert conn.receive_frame() == b"x" * (DIRECT_MIN - 1)
    writer.join(10)
    pong = peer.recv(4096)
    assert pong.startswith(b"dka") and b"k1" in pong


def test_receive_frame_returns_bytes_of_its_own(raw_peer):
    conn, peer = raw_peer
    one, two = os.urandom(DIRECT_MIN * 2), os.urandom(DIRECT_MIN * 2)
    writer = _send_pieces(peer, encode_frame(one) + encode_frame(two), [7])
    got = conn.receive_frame()
    assert type(got) is bytes
    assert conn.receive_frame() == two
    assert got == one                          # not overwritten by the next frame
    writer.join(10)


def test_body_above_direct_max_still_received(raw_peer):
    conn, peer = raw_peer
    data = os.urandom(DIRECT_MAX + 1)
    writer = _send_pieces(peer, encode_frame(data), [5, 1 << 20])
    assert conn.receive_frame_view() == data
    writer.join(30)


def test_read_limit_applies_to_direct_reads(raw_peer):
    conn, peer = raw_peer
    writer = _send_pieces(peer, encode_frame(os.urandom(4 * DIRECT_MIN)), [8])
    with pytest.raises(ProtocolError, match=r"Read limit exceeded \(1024 chars\)"):
        conn.receive_frame_view(max_size=1024)
    writer.join(10)


def test_decode_chunk_of_a_view_is_a_view_of_the_chunk(raw_peer):
    conn, peer = raw_peer
    chunk = os.urandom(1 << 20)
    writer = _send_pieces(peer, encode_frame(b"".join(codec.encode_chunk_parts(chunk, "dencode"))),
                          [3, 70_000])
    data = codec.decode_chunk(conn.receive_frame_view())
    assert isinstance(data, memoryview) and data == chunk
    writer.join(10)


def test_tls_prefers_aes128_gcm_and_moves_large_frames(pki, registry_cfg):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend="pyopenssl")
    server = EchoServer("dips", cfg)
    try:
        conn = transport.connect("dips", "127.0.0.1", server.port, cfg=cfg, timeout=10,
                                 proxy_location=str(pki.proxy()))
        try:
            conn.settimeout(30)
            assert conn._conn.get_cipher_name() == "TLS_AES_128_GCM_SHA256"
            payloads = [os.urandom(5 * DIRECT_MIN + 3), b"tiny", os.urandom(2 << 20)]
            for payload in payloads:
                conn.send_frame(payload)
            for payload in payloads:
                assert conn.receive_frame_view() == payload
        finally:
            conn.close()
        assert server.outcome().ok
    finally:
        server.close()


def test_tls_read_survives_a_stale_openssl_error_on_the_thread(pki, registry_cfg):
    """OpenSSL's error queue is per thread and SSL_get_error reads it: an error some
    earlier call left there (a worker thread's previous connection, say a failed write to
    a client that went away) made a later read that merely had to wait (EAGAIN on the
    non-blocking socket) look like SSL_ERROR_SYSCALL, "Error in _read: (11, 'EAGAIN')"
    (fault battery row 12: every upload served by that worker thread failed)."""
    from OpenSSL._util import lib

    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend="pyopenssl")
    server = EchoServer("dips", cfg)
    try:
        conn = transport.connect("dips", "127.0.0.1", server.port, cfg=cfg, timeout=10,
                                 proxy_location=str(pki.proxy()))
        try:
            conn.settimeout(30)
            payloads = [os.urandom(8 << 20), b"tiny", os.urandom(3 << 20)]
            for payload in payloads:
                lib.ERR_clear_error()
                lib.ERR_put_error(2, 0, 32, b"stale.c", 1)  # ERR_LIB_SYS, EPIPE: left behind
                conn.send_frame(payload)
                lib.ERR_put_error(2, 0, 32, b"stale.c", 1)
                assert conn.receive_frame_view() == payload
        finally:
            lib.ERR_clear_error()
            conn.close()
        assert server.outcome().ok
    finally:
        server.close()
