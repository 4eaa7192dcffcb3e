"""HTTP download keys: made by the handler when it stages files, checked by the HTTP front.

A key is 256 random bits from :mod:`secrets`; the register (:class:`~seproxy.staging.cache.ExpiringRegister`)
is indexed by the key's SHA-256 (:func:`key_digest`), so a look-up takes the same time
however close a guess is.
"""

from __future__ import annotations

import hashlib
import secrets


def new_key() -> str:
    """A fresh download key: 256 random bits from :mod:`secrets`, URL-safe."""
    return secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """The register index of a key (its SHA-256, hex)."""
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
