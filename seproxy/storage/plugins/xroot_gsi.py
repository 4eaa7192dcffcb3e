"""The XRootD client's GSI identity for one call (used by the ``XROOT`` plugin).

XRootD's GSI client takes a user's credential from the URL's opaque data
(``xrd.gsiusrpxy`` / ``xrd.gsiusrcrt`` / ``xrd.gsiusrkey``) when a connection
authenticates, and XrdCl keys its connection pool by ``user@host:port`` plus
those parameters. Two facts of the library shape what is here:

- the GSI client caches a loaded proxy *by file path* for as long as the proxy
  is valid, without re-reading the file: a path that later holds another
  user's proxy would go on authenticating as the first one. So every credential
  is handed to XRootD as a content-addressed copy ``<sha256>.pem`` in a private
  0700 directory of this process: one path, one credential, forever;
- the login name (``user@``) is the first 8 hex digits of that digest and the
  digest-named path is in the opaque data, so two credentials never share a
  connection (the pool key differs) and the server's log names each one.

A proxy is sent with ``xrd.gsiusrcrt``/``xrd.gsiusrkey`` set to ``/dev/null``:
if the proxy is refused or expired, the GSI client has no other identity to
fall back to (it would otherwise try ``~/.globus/usercert.pem``). Of a
certificate/key pair (the service's host credential) seproxy makes a 12-hour
proxy itself and presents that.

Nothing here writes the process environment. The GSI client's trust anchors
come from ``XrdSecGSICADIR`` (default ``/etc/grid-security/certificates``),
read once per process by the XRootD library; ``XrdSecCREDS`` in the environment
would override every per-call credential, so a per-call credential is refused
while it is set. Per-URL credentials need the bindings >= 5.7.1 (before, the
URL's proxy path was shared by all connections of the process).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from seproxy.errors import StorageError
from seproxy.security.pki import create_proxy
from seproxy.storage.credentials import StorageCredentials
from seproxy.storage.credfiles import (
    credential_file,
    identity_of,
    proxy_bytes,
    read_credential,
)

#: XRootD bindings that keep a URL's proxy path per connection (xrootd commit 921a65e, 5.7.1).
MIN_BINDINGS = (5, 7, 1)
#: Lifetime (seconds) of the proxies made of a certificate/key credential.
HOST_PROXY_LIFETIME = 12 * 3600
#: Environment variables of the GSI client that would override the per-URL credential.
OVERRIDING_VARIABLES = ("XrdSecCREDS",)


@dataclass(frozen=True)
class GsiLogin:
    """What a URL carries for one credential (login name, opaque data) and whose it is."""

    user: str
    opaque: str
    identity: str = ""


def _bindings_version() -> tuple[int, ...]:
    try:
        text = version("xrootd")
    except PackageNotFoundError:
        return ()
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


_PROXIES: dict[str, tuple[float, bytes]] = {}
_PROXIES_LOCK = threading.Lock()


def _proxy_of(cert_pem: bytes, key_pem: bytes) -> bytes:
    """An RFC 3820 proxy of a certificate and key (the service's host credential), made
    here and kept until an hour before it expires: the GSI client's own proxy making
    from a certificate/key pair is configured per process, not per URL."""
    digest = hashlib.sha256(cert_pem + b"\0" + key_pem).hexdigest()
    now = time.time()
    with _PROXIES_LOCK:
        made = _PROXIES.get(digest)
        if made is None or made[0] - now < 3600:
            chain = x509.load_pem_x509_certificates(cert_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
            pem = create_proxy(chain, key, group=None, lifetime=HOST_PROXY_LIFETIME)
            made = (now + HOST_PROXY_LIFETIME, pem)
            _PROXIES[digest] = made
        return made[1]


def gsi_login(credentials: StorageCredentials) -> GsiLogin | None:
    """The login of ``credentials`` for XRootD URLs; None when there is nothing to present."""
    pem = proxy_bytes(credentials)
    if pem is not None:
        digest, path = credential_file(pem)
        identity = identity_of(pem)
        params = {"xrd.gsiusrpxy": str(path), "xrd.gsiusrcrt": os.devnull,
                  "xrd.gsiusrkey": os.devnull}
    elif credentials.cert and credentials.key:
        cert = read_credential(credentials.cert, "certificate")
        pem = _proxy_of(cert, read_credential(credentials.key, "key"))
        digest, path = credential_file(pem)
        identity = identity_of(cert)
        params = {"xrd.gsiusrpxy": str(path), "xrd.gsiusrcrt": os.devnull,
                  "xrd.gsiusrkey": os.devnull}
    else:
        return None
    installed = _bindings_version()
    if installed < MIN_BINDINGS:
        raise StorageError(
            "Per-call XRootD credentials need the xrootd bindings >= "
            f"{'.'.join(map(str, MIN_BINDINGS))} "
            f"(installed: {'.'.join(map(str, installed)) or 'unknown'})"
        )
    overriding = [name for name in OVERRIDING_VARIABLES if os.environ.get(name)]
    if overriding:
        raise StorageError(
            f"{', '.join(overriding)} is set in the environment: it would replace every "
            "call's credential in the XRootD GSI client; unset it"
        )
    opaque = "&".join(f"{k}={quote(v, safe='/')}" for k, v in
                      {"xrd.wantprot": "gsi", **params}.items())
    return GsiLogin(user=digest[:8], opaque=opaque, identity=identity)


__all__ = ["MIN_BINDINGS", "GsiLogin", "gsi_login"]
