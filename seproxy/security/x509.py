"""X509 certificate chains and RFC 3820 proxies as DIRAC sees them.

``X509Chain`` holds a chain leaf first (a proxy file: proxy, [its key], issuing chain)
and answers the questions the credential dict needs: is it a proxy, a limited proxy,
who is the identity behind it, which DIRAC group does it carry, how long is it valid.

Proxy rules (RFC 3820 and PROTOCOL 8.3), checked by :meth:`X509Chain.check_structure`
and :func:`verify_chain`:

- a proxy carries ``proxyCertInfo``, *critical*; its subject is its issuer's subject
  plus exactly one single-valued ``CN``; it is signed by the certificate above it;
- proxies sit contiguously at the bottom of the chain, above them the end-entity
  (identity) certificate, then CAs; a proxy never issues a non-proxy;
- ``pCPathLenConstraint`` limits how many proxies may follow below it;
- a *legacy* (pre-RFC) proxy -- ``CN=proxy`` / ``CN=limited proxy`` without
  ``proxyCertInfo`` -- is rejected;
- a chain is *limited* when any of its proxies uses the limited policy language; an
  unlimited proxy below a limited one is refused (DIRAC does not take it for a proxy).

VOMS: the FQANs of embedded attribute certificates are *reported* only; the AC
signatures are **not** validated (nothing in DISET authorises by them, PROTOCOL 8.4).

:func:`verify_chain` is a pure-Python walk (issuer name, signature, validity, CA
flag, proxy rules, optional CRLs) up to a trusted CA; transports may run it after
the TLS library's own verification, or use it where no library check exists.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from seproxy.errors import AuthError
from seproxy.security import extensions
from seproxy.security.names import canonical_rdns, name_to_dn

_PEM_KEY = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----\r?\n?",
                      re.S)
_LEGACY_CNS = ("proxy", "limited proxy")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _to_certificate(item: Any) -> x509.Certificate:
    if isinstance(item, x509.Certificate):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    to_cryptography = getattr(item, "to_cryptography", None)  # pyOpenSSL X509
    if to_cryptography is not None:
        return to_cryptography()
    raise TypeError(f"not a certificate: {type(item).__name__}")


@dataclass(frozen=True)
class CertFacts:
    """What the chain logic needs from one certificate, computed once per certificate."""

    subject_dn: str
    issuer_dn: str
    subject_canon: bytes         # OpenSSL canonical name encodings (name equality)
    issuer_canon: bytes
    proxy: extensions.ProxyCertInfo | None
    proxy_critical: bool
    extends_issuer: bool         # subject == own issuer + one single-valued CN
    legacy_cn: bool              # last RDN is CN=proxy / CN=limited proxy
    group: str | None
    not_after: datetime.datetime


@lru_cache(maxsize=2048)
def facts_of(cert: x509.Certificate) -> CertFacts:
    """:class:`CertFacts` of ``cert`` (cached by certificate: repeat peers cost nothing)."""
    subject_der, issuer_der = cert.subject.public_bytes(), cert.issuer.public_bytes()
    subject_rdns, issuer_rdns = canonical_rdns(subject_der), canonical_rdns(issuer_der)
    last = list(cert.subject.rdns)[-1:]
    last_cn = None
    if last and len(last[0]) == 1:
        attr = next(iter(last[0]))
        if attr.oid == NameOID.COMMON_NAME:
            last_cn = attr.value
    found = extensions.read_proxy_cert_info(cert)
    return CertFacts(
        subject_dn=name_to_dn(cert.subject),
        issuer_dn=name_to_dn(cert.issuer),
        subject_canon=b"".join(subject_rdns),
        issuer_canon=b"".join(issuer_rdns),
        proxy=found[0] if found else None,
        proxy_critical=bool(found and found[1]),
        extends_issuer=last_cn is not None and subject_rdns[:-1] == issuer_rdns,
        legacy_cn=last_cn in _LEGACY_CNS,
        group=extensions.read_dirac_group(cert),
        not_after=cert.not_valid_after_utc,
    )


def proxy_info(cert: x509.Certificate) -> extensions.ProxyCertInfo | None:
    """The ``proxyCertInfo`` of ``cert`` (None if it is not an RFC 3820 proxy)."""
    return facts_of(cert).proxy


class X509Chain:
    """A certificate chain, leaf first, with an optional private key for the leaf."""

    def __init__(self, certificates: Sequence[x509.Certificate], private_key: Any = None) -> None:
        if not certificates:
            raise AuthError("empty certificate chain")
        self.certificates: list[x509.Certificate] = list(certificates)
        self.private_key = private_key
        self.facts: list[CertFacts] = [facts_of(c) for c in self.certificates]

    # -- constructors ----------------------------------------------------------
    @classmethod
    def from_pem(cls, data: bytes | str) -> "X509Chain":
        """Certificates (and at most one unencrypted private key) from PEM text."""
        if isinstance(data, str):
            data = data.encode()
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise AuthError("no certificate in the PEM data")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise AuthError(f"cannot read certificates: {exc}") from None
        keys = _PEM_KEY.findall(data)
        key = None
        if keys:
            if len(keys) > 1:
                raise AuthError("more than one private key in the PEM data")
            match = _PEM_KEY.search(data)
            try:
                key = serialization.load_pem_private_key(match.group(0), password=None)
            except (ValueError, TypeError) as exc:
                raise AuthError(f"cannot read the private key: {exc}") from None
        return cls(certs, key)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], key_path: str | os.PathLike[str] | None = None
                  ) -> "X509Chain":
        """A proxy file (proxy, key, chain) or a certificate file (+ ``key_path``)."""
        try:
            data = Path(path).read_bytes()
            if key_path is not None:
                data += b"\n" + Path(key_path).read_bytes()
        except OSError as exc:
            raise AuthError(f"cannot read credentials: {exc}") from None
        return cls.from_pem(data)

    @classmethod
    def from_certificates(cls, certs: Iterable[Any], key: Any = None) -> "X509Chain":
        """From ``cryptography`` or pyOpenSSL certificates, or PEM/DER bytes."""
        return cls([_to_certificate(c) for c in certs], key)

    def to_pem(self) -> bytes:
        """PEM in DIRAC's proxy file layout: leaf, key (if any), rest of the chain."""
        pems = [c.public_bytes(serialization.Encoding.PEM) for c in self.certificates]
        if self.private_key is not None:
            pems.insert(1, self.private_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        return b"".join(pems)

    # -- questions -------------------------------------------------------------
    @cached_property
    def proxy_count(self) -> int:
        """How many RFC 3820 proxies sit at the bottom of the chain."""
        count = 0
        for facts in self.facts:
            if facts.proxy is None:
                break
            count += 1
        return count

    @property
    def is_proxy(self) -> bool:
        return self.proxy_count > 0

    @cached_property
    def is_limited_proxy(self) -> bool:
        return any(f.proxy.limited for f in self.facts[:self.proxy_count])

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def subject_dn(self) -> str:
        return self.facts[0].subject_dn

    @property
    def issuer_dn(self) -> str:
        return self.facts[0].issuer_dn

    @cached_property
    def identity_dn(self) -> str:
        """Subject of the first non-proxy certificate (the user or host behind the proxy)."""
        if self.proxy_count < len(self.facts):
            return self.facts[self.proxy_count].subject_dn
        # Only proxies were given: the identity is the issuer of the topmost one.
        return self.facts[self.proxy_count - 1].issuer_dn

    @cached_property
    def dirac_group(self) -> str | None:
        """The group extension nearest the top of the chain (8.3; as DIRAC, every
        certificate is looked at), so re-delegating a proxy cannot change its group."""
        for facts in reversed(self.facts):
            if facts.group is not None:
                return facts.group
        return None

    @cached_property
    def voms_attributes(self) -> list[str]:
        """FQANs found in the chain's VOMS extensions, leaf first (signatures NOT checked)."""
        fqans: list[str] = []
        for cert in self.certificates[:max(self.proxy_count, 1)]:
            fqans.extend(extensions.read_voms_fqans(cert))
        return fqans

    @property
    def seconds_left(self) -> int:
        """Seconds until the first certificate of the chain expires (0 if expired)."""
        return self.seconds_left_at(_now())

    def seconds_left_at(self, now: datetime.datetime) -> int:
        """:attr:`seconds_left` as seen at ``now``."""
        return max(0, int((self.not_after - now).total_seconds()))

    @property
    def not_after(self) -> datetime.datetime:
        """When the chain stops being valid: the earliest end of validity of its certificates."""
        return min(f.not_after for f in self.facts)

    def check_structure(self) -> None:
        """Raise ``AuthError`` unless the proxies of the chain follow RFC 3820 (module doc)."""
        facts = self.facts
        for index, cert in enumerate(facts):
            above = facts[index + 1] if index + 1 < len(facts) else None
            if cert.proxy is None:
                if cert.legacy_cn and cert.extends_issuer:
                    raise AuthError(f"legacy (pre-RFC 3820) proxy not accepted: {cert.subject_dn}")
                continue
            if index >= self.proxy_count:
                raise AuthError(f"proxy {cert.subject_dn} issued a non-proxy certificate")
            if not cert.proxy_critical:
                raise AuthError(f"proxyCertInfo of {cert.subject_dn} is not critical")
            if not cert.extends_issuer:
                raise AuthError(f"proxy subject {cert.subject_dn} does not extend its "
                                f"issuer {cert.issuer_dn} by one CN")
            if not cert.proxy.limited and any(
                    f.proxy is not None and f.proxy.limited for f in facts[index + 1:]):
                raise AuthError(f"unlimited proxy {cert.subject_dn} derived from a limited one")
            if cert.proxy.path_length is not None and index > cert.proxy.path_length:
                raise AuthError(f"proxy path length of {cert.subject_dn} exceeded")
            if above is not None and above.subject_canon != cert.issuer_canon:
                raise AuthError(f"chain broken above {cert.subject_dn}")

    def __repr__(self) -> str:
        return f"<X509Chain {self.subject_dn!r} proxies={self.proxy_count}>"


# -- verification ----------------------------------------------------------------

def load_ca_directory(directory: str | os.PathLike[str]
                      ) -> tuple[list[x509.Certificate], list[x509.CertificateRevocationList]]:
    """Certificates (``*.0``..) and CRLs (``*.r0``..) of an OpenSSL hashed directory."""
    certs: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    directory = Path(directory)
    for path in sorted(directory.iterdir()):
        suffix = path.suffix[1:]
        try:
            if suffix.isdigit():
                certs.extend(x509.load_pem_x509_certificates(path.read_bytes()))
            elif suffix[:1] == "r" and suffix[1:].isdigit():
                crls.append(x509.load_pem_x509_crl(path.read_bytes()))
        except (ValueError, OSError):
            continue  # unreadable entries are skipped, as OpenSSL does
    return certs, crls


def _check_validity(cert: x509.Certificate, now: datetime.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise AuthError(f"certificate is not yet valid: {name_to_dn(cert.subject)}")
    if now > cert.not_valid_after_utc:
        raise AuthError(f"certificate has expired: {name_to_dn(cert.subject)}")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _may_sign_proxies(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        return True


def verify_chain(chain: X509Chain, trusted: Iterable[x509.Certificate], *,
                 crls: Iterable[x509.CertificateRevocationList] = (), check_crls: bool = False,
                 now: datetime.datetime | None = None, max_depth: int = 50) -> list[x509.Certificate]:
    """Walk ``chain`` up to a certificate in ``trusted``; return the full path (leaf first).

    Raises ``AuthError`` naming the first problem: structure (see module doc), a
    missing or wrong issuer, a bad signature, validity, a non-CA issuing a
    non-proxy, a revoked certificate, or (``check_crls``) a CA without a CRL.
    """
    now = now or _now()
    chain.check_structure()
    anchors = list(trusted)
    crl_list = list(crls)
    path: list[x509.Certificate] = []
    given = chain.certificates
    cert = given[0]
    for depth in range(max_depth + 1):
        path.append(cert)
        _check_validity(cert, now)
        if any(cert == anchor for anchor in anchors):
            break
        candidates = ([given[depth + 1]] if depth + 1 < len(given) else []) + [
            a for a in anchors if a.subject == cert.issuer]
        issuer = next((c for c in candidates if _signed_by(cert, c)), None)
        if issuer is None:
            if cert.issuer == cert.subject:
                raise AuthError(f"self-signed certificate not trusted: {name_to_dn(cert.subject)}")
            raise AuthError(f"unable to get a trusted issuer for {name_to_dn(cert.subject)} "
                            f"(issuer {name_to_dn(cert.issuer)})")
        if proxy_info(cert) is not None:
            if not _may_sign_proxies(issuer):
                raise AuthError(f"{name_to_dn(issuer.subject)} may not sign proxies")
        elif not _is_ca(issuer):
            raise AuthError(f"issuer {name_to_dn(issuer.subject)} of "
                            f"{name_to_dn(cert.subject)} is not a CA")
        if proxy_info(cert) is None:
            _check_revocation(cert, issuer, crl_list, check_crls, now)
        cert = issuer
    else:
        raise AuthError(f"certificate chain longer than {max_depth}")
    return path


def _check_revocation(cert: x509.Certificate, issuer: x509.Certificate,
                      crls: list[x509.CertificateRevocationList], required: bool,
                      now: datetime.datetime) -> None:
    mine = [c for c in crls if c.issuer == issuer.subject and c.is_signature_valid(
        issuer.public_key())]
    if not mine:
        if required:
            raise AuthError(f"no CRL for {name_to_dn(issuer.subject)}")
        return
    for crl in mine:
        if required and crl.next_update_utc is not None and crl.next_update_utc < now:
            raise AuthError(f"CRL of {name_to_dn(issuer.subject)} has expired")
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise AuthError(f"certificate revoked: {name_to_dn(cert.subject)}")


def verify_with_ca_directory(chain: X509Chain, ca_dir: str | os.PathLike[str], *,
                             check_crls: bool = False,
                             now: datetime.datetime | None = None) -> list[x509.Certificate]:
    """:func:`verify_chain` against the certificates and CRLs of a hashed CA directory."""
    certs, crls = load_ca_directory(ca_dir)
    return verify_chain(chain, certs, crls=crls, check_crls=check_crls, now=now)
