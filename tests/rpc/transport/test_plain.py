"""Plain (dip) transport and the shared Transport base: framing, keep-alives, bounds."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from seproxy.errors import PeerClosed, ProtocolError, TransportError
from seproxy.rpc import transport
from seproxy.rpc.wire import codec
from tests.conftest import load_vectors

FRAMES = {v["id"]: bytes.fromhex(v["framed_hex"]) for v in load_vectors("messages.jsonl")}


class RawPeer:
    """A raw TCP server on 127.0.0.1 that the test drives byte by byte."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0), family=family)
        self.port = self.sock.getsockname()[1]
        self.conn: socket.socket | None = None
        self._accepted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.conn, _ = self.sock.accept()
        self.conn.settimeout(10)
        self._accepted.set()

    def wait(self) -> socket.socket:
        assert self._accepted.wait(10)
        return self.conn

    def read_exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            piece = self.wait().recv(count - len(data))
            assert piece, "peer closed"
            data += piece
        return data

    def close(self) -> None:
        if self.conn:
            self.conn.close()
        self.sock.close()


@pytest.fixture
def raw_peer():
    peers = []

    def make(**kwargs):
        peer = RawPeer(**kwargs)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def test_roundtrip_id_and_addresses(echo_server):
    server = echo_server("dip")
    with transport.connect("dip", "127.0.0.1", server.port, cfg=None) as conn:
        assert re.fullmatch(rf"127\.0\.0\.1:\d+->127\.0\.0\.1:{server.port}", conn.id)
        assert conn.remote_address == ("127.0.0.1", server.port)
        assert conn.peer_credentials() == {}
        assert conn.peer_chain() is None
        conn.send_frame(b"hello")
        assert conn.receive_frame() == b"hello"
        conn.send_data({"OK": True, "Value": [1, "two"]}, "dencode")
        assert conn.receive_data() == {"OK": True, "Value": [1, "two"]}
    assert server.outcome().ok


def test_parts_and_large_frames(echo_server):
    server = echo_server("dip")
    big = bytes(range(256)) * (5 * 4096 + 17)  # ~5 MiB, not a multiple of any slice
    with transport.connect("dip", "127.0.0.1", server.port, cfg=None) as conn:
        conn.send_frame([b"a", memoryview(big)[:1000], bytearray(b"b"), memoryview(big)])
        assert conn.receive_frame() == b"a" + big[:1000] + b"b" + big
        conn.send_frame(codec.encode_chunk_parts(memoryview(big), "dencode"))
        assert codec.decode_chunk(conn.receive_frame()) == big


def test_ipv6_loopback(echo_server):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = echo_server("dip", host="::1")
    with transport.connect("dip", "::1", server.port, cfg=None) as conn:
        assert conn.id.endswith(f"->::1:{server.port}")
        conn.send_frame(b"six")
        assert conn.receive_frame() == b"six"


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_ping_is_answered_with_pong_then_frame_read(raw_peer, encoding):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        sock = peer.wait()
        sock.sendall(FRAMES[f"keepalive_ping.{encoding}"] + b"5:hello")
        assert conn.receive_frame() == b"hello"
        pong = FRAMES[f"keepalive_pong.{encoding}"]
        assert peer.read_exactly(len(pong)) == pong  # exact DIRAC bytes, same encoding


def test_client_pings_when_idle_for_the_lapse(raw_peer):
    peer = raw_peer()
    conn = transport.connect("dip", "127.0.0.1", peer.port, cfg=None, keepalive_lapse=0.2)
    result = {}

    def read():
        try:
            result["frame"] = conn.receive_frame()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            result["error"] = exc

    reader = threading.Thread(target=read)
    reader.start()
    header = peer.read_exactly(3)
    assert header == b"dka"
    digits = b""
    while not digits.endswith(b":"):
        digits += peer.read_exactly(1)
    ping = codec.decode(peer.read_exactly(int(digits[:-1])))
    assert ping["Value"]["kaping"] is True
    pong = codec.encode({"OK": True, "Value": {"id": ping["Value"]["id"], "kaping": False}}, "json")
    peer.wait().sendall(b"dka%d:%s4:done" % (len(pong), pong))
    reader.join(10)
    conn.close()
    assert result == {"frame": b"done"}


def test_waiting_for_an_answer_pings_then_times_out(raw_peer):
    """After a request is sent, the wait for its answer (one poll on the fast path) still
    sends a keep-alive ping once the lapse has passed, and still ends at the timeout,
    counted from the start of the wait."""
    peer = raw_peer()
    conn = transport.connect("dip", "127.0.0.1", peer.port, cfg=None, keepalive_lapse=0.2)
    conn.settimeout(1.0)
    conn.send_frame(b"request")
    assert peer.read_exactly(len(b"7:request")) == b"7:request"
    started = time.monotonic()
    with pytest.raises(TransportError, match="Socket read timeout exceeded"):
        conn.receive_frame()
    waited = time.monotonic() - started
    conn.close()
    assert peer.read_exactly(3) == b"dka"  # the ping went out while the answer was due
    assert 0.9 <= waited < 1.9  # one timeout, not a second one after the ping


def test_answer_after_a_request_arrives_in_pieces(raw_peer):
    """The answer's first read brings part of a frame: the parser takes over."""
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        conn.send_frame(b"request")
        sock = peer.wait()
        assert peer.read_exactly(9) == b"7:request"
        sock.sendall(b"11:hello")
        threading.Timer(0.05, lambda: sock.sendall(b" world4:next")).start()
        assert conn.receive_frame() == b"hello world"
        assert conn.receive_frame() == b"next"


def test_invalid_keepalive_is_refused(raw_peer):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        payload = codec.encode({"OK": True, "Value": {"id": "x"}}, "json")
        peer.wait().sendall(b"dka%d:%s" % (len(payload), payload))
        with pytest.raises(ProtocolError, match="Invalid keep alive, missing kaping"):
            conn.receive_frame()


def test_peer_closed_and_partial_frames(raw_peer):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        sock = peer.wait()
        sock.sendall(b"1")          # header split across reads
        sock.sendall(b"0:0123")
        sock.sendall(b"45678912:ab")  # end of frame and start of the next one
        assert conn.receive_frame() == b"0123456789"
        sock.close()
        with pytest.raises(PeerClosed, match="Peer closed connection"):
            conn.receive_frame()


def test_read_timeout_and_read_limit(raw_peer):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        conn.settimeout(0.2)
        with pytest.raises(TransportError, match="Socket read timeout exceeded"):
            conn.receive_frame()
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        sock = peer.wait()
        # more than one read buffer of an incomplete frame: the reads after the first
        # exceed the limit (DIRAC's semantics: the first read itself is not limited)
        data = b"1000000:" + b"x" * 600000
        threading.Thread(target=lambda: sock.sendall(data), daemon=True).start()
        with pytest.raises(ProtocolError, match=r"Read limit exceeded \(1024 chars\)"):
            conn.receive_frame(max_size=1024)


def test_oversized_and_malformed_frames(raw_peer):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        peer.wait().sendall(b"99999999999:")
        with pytest.raises(ProtocolError, match="exceeds the maximum frame size"):
            conn.receive_frame()
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        peer.wait().sendall(b"12x:")
        with pytest.raises(ProtocolError, match="Invalid frame length"):
            conn.receive_frame()


def test_write_timeout_when_peer_does_not_read(raw_peer):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        peer.wait()
        conn.settimeout(0.3)
        with pytest.raises(TransportError, match="Socket write timeout exceeded"):
            conn.send_frame(bytes(64 * 1024 * 1024))


def test_write_to_closed_peer_fails(raw_peer):
    peer = raw_peer()
    with transport.connect("dip", "127.0.0.1", peer.port, cfg=None) as conn:
        sock = peer.wait()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
        with pytest.raises(TransportError):
            for _ in range(100):
                conn.send_frame(bytes(1024 * 1024))


def test_listener_close_wakes_accept_and_bad_protocol():
    listener = transport.listen("dip", "127.0.0.1", 0, cfg=None)
    errors = []

    def accept():
        try:
            listener.accept()
        except TransportError as exc:
            errors.append(exc)

    thread = threading.Thread(target=accept)
    thread.start()
    listener.close()
    thread.join(5)
    assert not thread.is_alive() and errors
    with pytest.raises(Exception, match="Unknown protocol"):
        transport.connect("http", "127.0.0.1", 1, cfg=None)


def test_connect_refused_is_a_transport_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(TransportError, match="Cannot connect"):
            transport.connect("dip", "127.0.0.1", port, cfg=None, timeout=2)

