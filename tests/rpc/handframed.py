"""A hand-framed DISET client, as older tools are: Python's ``ssl`` module, frames written
as ``<length>:<payload>``, requests in one fixed encoding, answers returned as raw bytes.

It shares no code with seproxy's client or transport, so the tests see exactly what a
server sends: ``call(...)`` returns the raw answer payloads of the proposal and the call.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from seproxy.rpc.wire.proposal import build_proposal
from seproxy.rpc.wire import dencode, jencode

ENCODERS = {"dencode": dencode.encode, "json": jencode.encode}


def _read_frame(conn: ssl.SSLSocket) -> bytes:
    header = b""
    while not header.endswith(b":"):
        byte = conn.recv(1)
        if not byte:
            raise ConnectionError(f"closed in the frame header after {header!r}")
        header += byte
    length = int(header[:-1])
    payload = bytearray()
    while len(payload) < length:
        chunk = conn.recv(length - len(payload))
        if not chunk:
            raise ConnectionError("closed in the frame body")
        payload += chunk
    return bytes(payload)


def call(port: int, service: str, method: str, args: list[Any], *, proxy: Path, ca_dir: Path,
         encoding: str = "dencode", setup: str = "None", vo: str = "dirac") -> tuple[bytes, bytes]:
    """One RPC on a fresh connection: (raw proposal answer, raw call answer)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(capath=str(ca_dir))
    context.load_cert_chain(str(proxy))
    encode = ENCODERS[encoding]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw) as conn:
        proposal = build_proposal(service, "RPC", method, setup=setup, vo=vo)
        for value in (proposal,):
            payload = encode(value)
            conn.sendall(b"%d:%s" % (len(payload), payload))
        accepted = _read_frame(conn)
        payload = encode({"OK": True, "Value": args})
        conn.sendall(b"%d:%s" % (len(payload), payload))
        return accepted, _read_frame(conn)


def decode_dencode_only(payload: bytes) -> Any:
    """What a DEncode-only tool does with an answer (fails on JSON)."""
    return dencode.decode(payload)[0]
