"""The typed seam between the framework and whoever is handed a connection.

A handler, a transfer (``seproxy.transfer``), the message broker and the clients only
ever see one accepted, handshaken connection through :class:`Connection`; the server's
accept loop and workers also drive the handshake and poll the descriptor
(:class:`ServerConnection`). ``seproxy.rpc.transport.Transport`` implements both;
tests may hand in anything with these methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from seproxy.security.x509 import X509Chain

#: One frame's payload: bytes, a view, or parts sent back to back without joining.
Payload = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]


@runtime_checkable
class Connection(Protocol):
    """What may be done with a connection one is handed (PROTOCOL.md 3, 4)."""

    #: ``"<local ip>:<port>-><remote ip>:<port>"``, for logs
    id: str
    remote_address: tuple[str, int]

    def send_frame(self, payload: Payload, *, keepalive: bool = False) -> None:
        """Send one frame (``TransportError`` when the connection broke)."""

    def send_data(self, value: Any, encoding: str | None = None) -> None:
        """Encode ``value`` (``LocalProtocolError`` if it cannot be) and send it as one frame."""

    def receive_frame(self, max_size: int | None = None) -> bytes:
        """The next frame's payload (keep-alive pings are answered underneath)."""

    def receive_data(self, max_size: int | None = None) -> Any:
        """The next frame, decoded (``RemoteProtocolError`` for malformed bytes)."""

    def peer_credentials(self) -> dict[str, Any]:
        """The peer's credential dict (PROTOCOL.md 8.1); ``{}`` without TLS."""

    def peer_chain(self) -> X509Chain | None:
        """The peer's verified certificate chain (None without TLS)."""

    def settimeout(self, seconds: float | None) -> None:
        """Bound every later read and write (None: no bound)."""

    def wait_readable(self, seconds: float) -> bool:
        """True when a frame is buffered or arrives within ``seconds``."""

    def close(self) -> None:
        """Close the connection (idempotent)."""


@runtime_checkable
class ServerConnection(Connection, Protocol):
    """An accepted connection as the server's accept loop and workers drive it."""

    def handshake(self, timeout: float = 10.0) -> None:
        """Finish the (TLS) handshake; a failure closes the connection."""

    def fileno(self) -> int:
        """The socket's descriptor (parked reuse sessions wait in a selector)."""

    def receive_frame_nowait(self, max_size: int | None = None) -> bytes | None:
        """A whole frame if what is readable now completes one, else None (never waits)."""

    def next_frame_length(self) -> int:
        """Wait for the next frame's header; its body length (the body is not read)."""

    def receive_frame_view(self, max_size: int | None = None) -> memoryview:
        """Like ``receive_frame``; a large body is a view of a buffer the connection reuses."""

    def take_body_buffer(self, replacement: bytearray | None = None) -> bytearray | None:
        """Hand over (drop) the large-frame buffer."""

    def interrupt(self) -> None:
        """Wake a thread blocked on the connection, from any thread (socket shut down)."""
