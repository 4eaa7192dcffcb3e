"""Proxy delegation in the proposal answer (PROTOCOL.md 4.4), both halves.

::

    C->S  proposal
    S->C  S_OK({"delegate": <PEM certificate request>})     server made a fresh key pair
    C->S  "<PEM chain>"                                     bare string: a proxy for the
                                                            request's key, signed by the
                                                            client's proxy, + its chain
    S->C  S_OK()  or  S_ERROR("Error in receiving delegated proxy: ...")

The server checks that the delegated chain carries *its* public key, is a valid
proxy chain (each certificate signed by the next, RFC 3820 naming), and belongs to
the identity that authenticated the connection; then it holds the chain with its
private key (PEM: proxy, key, chain) for the storage calls of this request only.
"""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from seproxy.errors import AuthError
from seproxy.security import pki as devpki

DELEGATION_LIFETIME = 86400
DELEGATE_KEY = "delegate"


def make_request() -> tuple[str, Any]:
    """Server: a new key and a PEM certificate request for it."""
    key = devpki.generate_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "delegation")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii"), key


class _PublicKeyOnly:
    """Stands in for a private key where only ``public_key()`` is used (signing a request)."""

    def __init__(self, public_key: Any) -> None:
        self._public = public_key

    def public_key(self) -> Any:
        return self._public


def sign_request(request_pem: str | bytes, proxy_pem: bytes, *, lifetime: int = DELEGATION_LIFETIME,
                 group: str | None = None) -> str:
    """Client: a proxy for the request's key, signed with our proxy; PEM chain, no key."""
    if isinstance(request_pem, str):
        request_pem = request_pem.encode("ascii")
    try:
        csr = x509.load_pem_x509_csr(request_pem)
    except ValueError as exc:
        raise AuthError(f"Invalid delegation request: {exc}") from exc
    from seproxy.security.x509 import X509Chain

    proxy = X509Chain.from_pem(proxy_pem)  # one parse: certificates, key, group
    if proxy.private_key is None:
        raise AuthError("Cannot delegate: the proxy has no private key")
    chain, key = proxy.certificates, proxy.private_key
    if group is None:
        group = proxy.dirac_group
    cert, _ = devpki.create_proxy_certificate(chain, key, group=group, lifetime=lifetime,
                                              proxy_key=_PublicKeyOnly(csr.public_key()))
    return (devpki.cert_to_pem(cert) + b"".join(devpki.cert_to_pem(c) for c in chain)).decode("ascii")


def accept(chain_pem: Any, key: Any, peer_certs: list[x509.Certificate]) -> bytes:
    """Server: verify a delegated chain; the proxy file (PEM: proxy, key, chain).

    The chain above the new proxy must be exactly the (verified) chain the client
    authenticated the connection with: nobody delegates an identity they did not prove.
    """
    from seproxy.security.x509 import X509Chain

    if not isinstance(chain_pem, (str, bytes)):
        raise AuthError("the delegated chain is not a PEM string")
    data = chain_pem.encode("ascii", "replace") if isinstance(chain_pem, str) else chain_pem
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise AuthError(f"unreadable chain: {exc}") from exc
    mine = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    theirs = certs[0].public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    if mine != theirs:
        raise AuthError("the delegated proxy is not for the requested key")
    der = serialization.Encoding.DER
    if not peer_certs or [c.public_bytes(der) for c in certs[1:len(peer_certs) + 1]] != \
            [c.public_bytes(der) for c in peer_certs]:
        raise AuthError("the delegated proxy is not signed by the connection's credentials")
    try:
        certs[0].verify_directly_issued_by(certs[1])
    except Exception as exc:  # InvalidSignature carries no message
        raise AuthError(f"the delegated proxy's signature does not verify ({exc!r})") from exc
    chain = X509Chain.from_certificates(certs)
    if not chain.is_proxy:
        raise AuthError("the delegated certificate is not a proxy")
    now = datetime.datetime.now(datetime.timezone.utc)
    if certs[0].not_valid_after_utc <= now:
        raise AuthError("the delegated proxy has expired")
    return devpki.cert_to_pem(certs[0]) + devpki.key_to_pem(key) + b"".join(
        devpki.cert_to_pem(c) for c in certs[1:])
