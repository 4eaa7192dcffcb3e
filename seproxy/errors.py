"""The one exception tree used inside seproxy.

Everything below the DIRAC-facing boundary raises one of these; the boundary
(handler dispatch, client results, storage plugin results) turns them into
``S_ERROR`` dictionaries in exactly one place per boundary.

::

    SeproxyError
     +-- ProtocolError      malformed or oversized bytes on the wire (codecs, framing, proposal)
     +-- TransportError     the connection failed: TLS handshake, read/write, timeout, peer closed
     |    +-- PeerClosed    the peer closed the connection cleanly
     +-- AuthError          credentials missing, invalid, or not authorised
     +-- ConfigError        configuration missing or malformed
     +-- TransferError      file-transfer stream failure (CRC, size limit, abort)
     +-- StorageError       a storage backend failed
     +-- PathError          a file name or LFN that would escape its root (``..``, NUL, ...)

Each carries an optional DIRAC ``errno`` so that the S_ERROR built from it at the
boundary keeps DIRAC's ``Errno`` field.
"""

from __future__ import annotations


class SeproxyError(Exception):
    """Base class of every seproxy error."""

    errno: int = 0

    def __init__(self, message: str = "", *, errno: int | None = None) -> None:
        super().__init__(message)
        if errno is not None:
            self.errno = errno

    @property
    def message(self) -> str:
        return str(self)


class ProtocolError(SeproxyError):
    """Bytes that do not follow the DISET wire format (or exceed a configured bound)."""


class TransportError(SeproxyError):
    """A connection-level failure: handshake, read, write, timeout."""


class PeerClosed(TransportError):
    """The peer closed the connection."""


class AuthError(SeproxyError):
    """Missing, invalid or insufficient credentials."""


class ConfigError(SeproxyError):
    """The configuration is missing an option or holds a malformed value."""


class TransferError(SeproxyError):
    """A FileHelper stream failed (CRC mismatch, size limit, early stop)."""


class StorageError(SeproxyError):
    """A storage backend failed."""


class PathError(SeproxyError):
    """A path or LFN that is empty, contains NUL, or would escape its root."""
