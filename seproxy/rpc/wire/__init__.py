"""The sans-IO wire core of DISET: encodings and frames, no sockets.

- ``dencode``: DIRAC's DEncode (PROTOCOL.md 3.1)
- ``jencode``: DIRAC's JSON (3.2)
- ``codec``: encoding choice, mixed decoder, transfer-chunk fast paths (3.3)
- ``framing``: incremental frame parser and writers, keep-alives (2)
- ``limits``: default bounds (max payload size, max nesting depth, max frame size)

Every decoder and the frame parser raise only ``seproxy.errors.ProtocolError``.
"""

from seproxy.rpc.wire import codec, dencode, framing, jencode, limits

__all__ = ["codec", "dencode", "framing", "jencode", "limits"]
