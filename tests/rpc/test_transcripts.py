"""DIRAC's captured RPC conversations replayed against a running seproxy service.

Every client frame of a transcript (``vectors/transcripts.jsonl``, the non-transfer
scenarios) is sent as captured; every server frame must come back byte for byte,
except where the vectors README says values vary: the ``ping`` answer (times,
uptimes, load, CPU times, the port in ``URL``) is compared by structure, and the
``CallStack`` of framework errors without its content (PROTOCOL.md 5.3).
"""

from __future__ import annotations

import datetime

import pytest

from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.transport import connect
from seproxy.rpc.wire import codec
from tests.conftest import load_vectors

NAME = "DataManagement/StorageElement"
SCENARIOS = [t for t in load_vectors("transcripts.jsonl")
             if "FileTransfer" not in t["scenario"] and "TransferClient" not in t["scenario"]]


def payload_of(framed: bytes) -> bytes:
    if framed.startswith(b"dka"):
        framed = framed[3:]
    return framed.split(b":", 1)[1]


def shape(value):
    """Structure of a ping answer: keys in order and value types, recursively."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    return type(value).__name__


@pytest.fixture(scope="module")
def services(seproxy_service_module):
    return {enc: seproxy_service_module(RequestHandler, name=NAME, encoding=enc) for enc in ("json", "dencode")}


def test_all_rpc_scenarios_are_covered():
    assert len(SCENARIOS) >= 25


@pytest.mark.parametrize("transcript", SCENARIOS, ids=[t["scenario"] for t in SCENARIOS])
def test_transcript_reproduced(services, transcript):
    encoding = "dencode" if transcript["scenario"].startswith("srv-dencode") else "json"
    service = services[encoding]
    transport = connect("dip", "127.0.0.1", service.port, cfg=None, timeout=10)
    transport.settimeout(30)
    checked = 0
    try:
        for index, step in enumerate(transcript["steps"]):
            expected = bytes.fromhex(step["framed_hex"])
            if step["dir"] == "C>S":
                transport.send_frame(payload_of(expected), keepalive=expected.startswith(b"dka"))
                continue
            if expected.startswith(b"dka"):
                continue  # the transport answers pings itself: checked below through the pong
            got = transport.receive_frame()
            want = codec.decode(payload_of(expected))
            value = want.get("Value") if isinstance(want, dict) else None
            if isinstance(value, dict) and "service uptime" in value:
                mine = codec.decode(got)
                assert shape(mine) == shape(want), f"step {index}"
                assert mine["Value"]["name"] == NAME and mine["Value"]["version"] == value["version"]
                assert isinstance(mine["Value"]["time"], datetime.datetime)
                assert (got[:1] == b"{") == (encoding == "json"), "answered in the service's encoding"
            elif step.get("callstack_redacted"):
                mine = codec.decode(got)
                assert list(mine) == list(want), f"step {index}: key order"
                mine.pop("CallStack")
                want.pop("CallStack")
                assert mine == want, f"step {index}"
            else:
                assert b"%d:%s" % (len(got), got) == expected, f"step {index}"
            checked += 1
    finally:
        transport.close()
    assert checked >= 1


def test_keepalive_ping_answered_with_pong(services):
    """The ``dka`` step of the keep-alive transcript, byte for byte."""
    transcript = next(t for t in SCENARIOS if t["scenario"] == "srv-json/cli-json keepalive ping during RPC")
    steps = [bytes.fromhex(s["framed_hex"]) for s in transcript["steps"]]
    import socket
    with socket.create_connection(("127.0.0.1", services["json"].port), timeout=10) as sock:
        sock.sendall(steps[0])
        assert sock.recv(100) == steps[1]
        sock.sendall(steps[2])
        pong = b""
        while len(pong) < len(steps[3]):
            pong += sock.recv(100)
        assert pong == steps[3]
