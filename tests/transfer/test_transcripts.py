"""DIRAC's captured transfer conversations replayed against a seproxy service.

Every client frame of a transcript (vectors/transcripts.jsonl) is sent as captured;
every server frame must come back byte-for-byte (only the CallStack that DIRAC
attaches to framework errors is compared without its content, PROTOCOL.md 5.3).
"""

from __future__ import annotations

import pytest

from seproxy.rpc.transport import connect
from seproxy.rpc.wire import codec
from tests.conftest import load_vectors

SCENARIOS = [t for t in load_vectors("transcripts.jsonl")
             if ("FileTransfer" in t["scenario"] or "TransferClient" in t["scenario"])
             # the receiveBulk tar holds file times of the capture machine: tested functionally
             and "receiveBulk" not in t["scenario"]]


def server_encoding(scenario: str) -> str:
    return "dencode" if scenario.startswith("srv-dencode") else "json"


def payload_of(framed: bytes) -> bytes:
    return framed.split(b":", 1)[1]


def strip_callstack(value):
    if isinstance(value, dict):
        value = dict(value)
        value.pop("CallStack", None)
    return value


@pytest.mark.parametrize("transcript", SCENARIOS, ids=[t["scenario"] for t in SCENARIOS])
def test_transcript_reproduced(seproxy_services, transcript):
    service = seproxy_services(server_encoding(transcript["scenario"]))
    (service.storage / "existing.txt").write_bytes(b"hello world")
    (service.storage / "capt").mkdir(exist_ok=True)
    (service.storage / "capt" / "small.txt").write_bytes(b"hello world")
    transport = connect("dip", "127.0.0.1", service.port, cfg=None, timeout=10)
    transport.settimeout(30)
    try:
        for index, step in enumerate(transcript["steps"]):
            expected = bytes.fromhex(step["framed_hex"])
            if step["dir"] == "C>S":
                transport.send_frame(payload_of(expected))
                continue
            got = transport.receive_frame()
            if step.get("callstack_redacted"):
                assert strip_callstack(codec.decode(got)) == strip_callstack(
                    codec.decode(payload_of(expected))), f"step {index}"
            else:
                assert b"%d:%s" % (len(got), got) == expected, f"step {index}"
    finally:
        transport.close()
    if "sendBulk" in transcript["scenario"]:
        assert (service.storage / "capt" / "bulk1").is_dir()
        assert any((service.storage / "capt" / "bulk1").iterdir())
