"""Per-call storage credentials.

A ``StorageCredentials`` travels with one ``StorageElement`` (and its plugins)
instead of through ``os.environ``: two threads acting for two users never see
each other's identity. Each plugin takes what it understands:

=================  ===========================================================
plugin             uses
=================  ===========================================================
File               nothing (the service's own file-system rights)
S3                 ``s3_access_key``/``s3_secret_key``/``s3_session_token``
XROOT              ``proxy_path`` (passed in the URL, never in the environment)
DIP                ``proxy_path`` or ``cert``/``key`` for the DISET connection
=================  ===========================================================

``vo`` and ``group`` tell the facade which VO the caller acts for when the
``StorageElement`` is built without an explicit ``vo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StorageCredentials:
    """Identity material for one storage call (immutable; never written to the environment)."""

    proxy_path: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_session_token: str | None = field(default=None, repr=False)
    vo: str | None = None
    group: str | None = None

    @property
    def has_s3_keys(self) -> bool:
        return bool(self.s3_access_key and self.s3_secret_key)


__all__ = ["StorageCredentials"]
