"""The one exception tree used inside seproxy.

Everything below the DIRAC-facing boundary raises one of these; the boundary
(handler dispatch, client results, storage plugin results) turns them into
``S_ERROR`` dictionaries in exactly one place per boundary.

::

    SeproxyError
     +-- ProtocolError      bytes that do not follow the wire format (codecs, framing, proposal)
     |    +-- LocalProtocolError   *we* were about to send what the wire cannot carry
     |    |                        (an unencodable value): our bug, the peer is not to blame
     |    +-- RemoteProtocolError  the *peer* sent malformed or oversized bytes
     +-- TransportError     the connection failed: TLS handshake, read/write, timeout, peer closed
     |    +-- PeerClosed    the peer closed the connection cleanly
     +-- AuthError          credentials missing, invalid, or not authorised
     +-- ConfigError        configuration missing or malformed
     +-- TransferError      file-transfer stream failure (CRC, size limit, abort)
     +-- StorageError       a storage backend failed
     |    +-- CacheFullError   the staging cache cannot make room (also an ``OSError``)
     |    +-- SizeMismatch     a local copy's size differs from the announced one (also an ``OSError``)
     +-- StateError         the shared state database cannot be reached or refused a statement
     +-- ItemFailed         a storage plugin primitive fails one item with a DIRAC ``Failed`` value
     +-- PathError          a file name or LFN that would escape its root (``..``, NUL, ...)
     +-- KeyInUse           a single-use download key another download holds (HTTP 409)
     +-- SErrorException    carries an S_ERROR result through code that raises
                            (DIRAC API, ``seproxy.returnvalues``)

``ProtocolError`` itself is still raised where the side is not known; code that needs
to tell a peer's fault from ours catches the two subclasses (h11 keeps them apart the
same way). Each error carries an optional DIRAC ``errno`` so that the S_ERROR built from
it at the boundary keeps DIRAC's ``Errno`` field.
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


class LocalProtocolError(ProtocolError):
    """We were about to send something the wire format cannot carry (our side's fault)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that do not follow the wire format or exceed a bound."""


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


class StateError(SeproxyError):
    """The state database (replica catalogue, HTTP key claims) is unreachable or failed."""


class PathError(SeproxyError):
    """A path or LFN that is empty, contains NUL, or would escape its root."""


class CacheFullError(StorageError, OSError):
    """The staging cache cannot make room for a new file (all remaining files are in use)."""


class SizeMismatch(StorageError, OSError):
    """A local copy's size differs from the announced source size."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"Source and destination file sizes do not match ({expected} vs {actual}).")
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return str(self.args[0])


class ItemFailed(SeproxyError):
    """Raised by a storage plugin primitive to put ``value`` (any object) into ``Failed``.

    Deliberately not a ``StorageError``: plugins catch those to build partial results,
    and an item's own failure must pass through them unchanged.
    """

    def __init__(self, value: object) -> None:
        super().__init__(value)  # type: ignore[arg-type] - DIRAC values may be dicts
        self.value = value


class KeyInUse(SeproxyError):
    """A single-use download key is claimed by another running download."""
