"""A development PKI and RFC 3820 proxy creation (what ``seproxy pki`` and ``proxy-init`` use).

``DevPKI(directory)`` lays out a grid-security style directory::

    <directory>/
      ca/cacert.pem, ca/cakey.pem          the development CA
      certificates/<hash>.0                OpenSSL hashed CA directory (+ <hash>.r0 CRL)
      hostcert.pem, hostkey.pem            host certificate (SAN: names + 127.0.0.1, ::1)
      users/<name>/usercert.pem, userkey.pem

so it can be used directly as ``/DIRAC/Security/Grid-Security``. Keys are unencrypted
PKCS#8, mode 0600. ``create_proxy`` makes proxies the way DIRAC does (PROTOCOL 8.3):
subject = issuer + ``/CN=<64-bit random serial>``, notBefore = now - 900 s, critical key
usage, critical ``proxyCertInfo`` without path length, the DIRAC group extension, RSA 2048,
SHA-256; the PEM holds the proxy, its key, then the issuing chain.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from seproxy.errors import AuthError
from seproxy.security import extensions
from seproxy.security.names import dn_to_name, subject_hash

CA_DN = "/C=ch/O=DIRAC/CN=DIRAC Test CA"
DN_PREFIX = "/C=ch/O=DIRAC/OU=DIRAC Test"
#: DIRAC back-dates proxies by this much to absorb clock skew.
PROXY_BACKDATE = datetime.timedelta(seconds=900)
DEFAULT_PROXY_LIFETIME = 86400
#: DevPKI.ensure renews certificates this close to expiry.
RENEW_BEFORE = datetime.timedelta(days=2)
_DAY = datetime.timedelta(days=1)

PrivateKey = rsa.RSAPrivateKey


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def generate_key(bits: int = 2048) -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def random_serial() -> int:
    """A positive 64-bit random serial (DIRAC's proxy CN is this number in decimal)."""
    return secrets.randbits(64) or 1


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` (mode 0600 from creation on; replaced atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_public(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o644)
    return path


def issue_certificate(
    subject: str | x509.Name,
    key: PrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    days: int = 365,
    ca: bool = False,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    server: bool = False,
    client: bool = True,
) -> x509.Certificate:
    """Sign a CA (``issuer=None``: self-signed), host or user certificate."""
    name = dn_to_name(subject) if isinstance(subject, str) else subject
    now = utcnow()
    not_before = not_before or now - datetime.timedelta(minutes=5)
    not_after = not_after or now + days * _DAY
    issuer_name = name if issuer is None else issuer.subject
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(ski, critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False)
    if ca:
        usage = dict(key_cert_sign=True, crl_sign=True, digital_signature=False,
                     key_encipherment=False)
    else:
        usage = dict(key_cert_sign=False, crl_sign=False, digital_signature=True,
                     key_encipherment=True)
        purposes = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
                   ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        if purposes:
            builder = builder.add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
    builder = builder.add_extension(
        x509.KeyUsage(content_commitment=False, data_encipherment=False, key_agreement=False,
                      encipher_only=False, decipher_only=False, **usage), critical=True)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ip_addresses)]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def create_proxy_certificate(
    chain: Sequence[x509.Certificate],
    issuer_key: PrivateKey,
    *,
    group: str | None = None,
    limited: bool = False,
    lifetime: int = DEFAULT_PROXY_LIFETIME,
    proxy_key: PrivateKey | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    subject: x509.Name | None = None,
    rfc: bool = True,
    path_length: int | None = None,
    extra_extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> tuple[x509.Certificate, PrivateKey]:
    """Sign a proxy of ``chain[0]`` with ``issuer_key``; return it and its key.

    ``path_length`` sets ``pCPathLenConstraint`` (DIRAC sets none);
    ``extra_extensions`` are (extension, critical) pairs, e.g. a VOMS AC sequence.
    ``subject`` and ``rfc=False`` exist to build *bad* proxies for refusal tests
    (wrong subject; legacy proxy without ``proxyCertInfo``).
    """
    parent = chain[0]
    parent_info = extensions.read_proxy_cert_info(parent)
    if parent_info is not None and parent_info[0].limited:
        limited = True  # a proxy of a limited proxy is limited
    if lifetime <= 0 and not_after is None:
        raise AuthError(f"proxy lifetime must be positive, not {lifetime}")
    key = proxy_key or generate_key()
    now = utcnow()
    serial = random_serial()
    if subject is None:
        cn = str(serial) if rfc else ("limited proxy" if limited else "proxy")
        subject = x509.Name([*parent.subject.rdns,
                             x509.RelativeDistinguishedName(
                                 [x509.NameAttribute(NameOID.COMMON_NAME, cn)])])
    not_before = not_before or now - PROXY_BACKDATE
    if not_after is None:
        not_after = min(now + datetime.timedelta(seconds=lifetime), parent.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=True, data_encipherment=True, key_agreement=False,
                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                          decipher_only=False),
            critical=True)
    )
    if rfc:
        builder = builder.add_extension(
            extensions.proxy_cert_info_extension(limited, path_length), critical=True)
    for extension, critical in extra_extensions:
        builder = builder.add_extension(extension, critical=critical)
    if group:
        builder = builder.add_extension(extensions.dirac_group_extension(group), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def proxy_pem(proxy: x509.Certificate, key: PrivateKey,
              chain: Sequence[x509.Certificate]) -> bytes:
    """DIRAC proxy file layout: proxy certificate, its key, then the issuing chain."""
    return cert_to_pem(proxy) + key_to_pem(key) + b"".join(cert_to_pem(c) for c in chain)


def create_proxy(
    cert: x509.Certificate | Sequence[x509.Certificate],
    key: PrivateKey,
    *,
    group: str | None,
    limited: bool = False,
    lifetime: int = DEFAULT_PROXY_LIFETIME,
) -> bytes:
    """A DIRAC-style RFC 3820 proxy of ``cert`` (or of a chain, leaf first) as PEM.

    The issuing chain written after the key is ``cert`` and the rest of the given
    chain (CA certificates are not included, as in DIRAC).
    """
    chain = [cert] if isinstance(cert, x509.Certificate) else list(cert)
    proxy, proxy_key = create_proxy_certificate(chain, key, group=group, limited=limited,
                                                lifetime=lifetime)
    return proxy_pem(proxy, proxy_key, chain)


def create_crl(ca_cert: x509.Certificate, ca_key: PrivateKey,
               revoked_serials: Iterable[int] = (), *, days: int = 30) -> x509.CertificateRevocationList:
    now = utcnow()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - datetime.timedelta(minutes=5))
        .next_update(now + days * _DAY)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now - datetime.timedelta(minutes=1)).build())
    return builder.sign(ca_key, hashes.SHA256())


def install_hashed(directory: Path, certs: Iterable[x509.Certificate] = (),
                   crls: Iterable[x509.CertificateRevocationList] = ()) -> list[Path]:
    """Write CA certificates as ``<hash>.N`` and CRLs as ``<hash>.rN`` into ``directory``.

    An existing file with identical contents is reused; a different one with the
    same hash moves on to the next index (as ``openssl rehash`` does).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    items = [(c.subject, "", cert_to_pem(c)) for c in certs]
    items += [(c.issuer, "r", c.public_bytes(serialization.Encoding.PEM)) for c in crls]
    for name, kind, data in items:
        digest = subject_hash(name)
        index = 0
        while True:
            path = directory / f"{digest}.{kind}{index}"
            if not path.exists() or path.read_bytes() == data or kind == "r":
                break
            index += 1
        written.append(write_public(path, data))
    return written


def load_key(path: Path) -> PrivateKey:
    return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


class DevPKI:
    """A development CA with host and user credentials in one directory (see module doc)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.ca_dir = self.directory / "certificates"
        self.ca_cert = self.directory / "ca" / "cacert.pem"
        self.ca_key = self.directory / "ca" / "cakey.pem"
        self.host_cert = self.directory / "hostcert.pem"
        self.host_key = self.directory / "hostkey.pem"
        #: what the last :meth:`ensure` (re)made: "CA", "host", "user <name>"
        self.renewed: list[str] = []

    def user_paths(self, name: str = "testuser") -> tuple[Path, Path]:
        base = self.directory / "users" / name
        return base / "usercert.pem", base / "userkey.pem"

    @property
    def user_cert(self) -> Path:
        return self.user_paths()[0]

    @property
    def user_key(self) -> Path:
        return self.user_paths()[1]

    def ensure(self, hostnames: Sequence[str] = ("localhost",),
               users: Sequence[str] = ("testuser",)) -> "DevPKI":
        """Create or renew whatever needs it: CA (+ hashed dir), host and user credentials.

        A certificate is (re)issued when it or its key is missing, when it expires within
        :data:`RENEW_BEFORE`, or when the current CA did not sign it (the CA was
        recreated). ``self.renewed`` lists what was made.
        """
        self.renewed = []
        self.ensure_ca()
        ca_cert = load_cert(self.ca_cert)
        if self._needs_issue(self.host_cert, self.host_key, ca_cert):
            self.issue_host(hostnames)
            self.renewed.append("host")
        for user in users:
            cert, key = self.user_paths(user)
            if self._needs_issue(cert, key, ca_cert):
                self.issue_user(user)
                self.renewed.append(f"user {user}")
        return self

    def ensure_ca(self, dn: str = CA_DN, days: int = 3650) -> None:
        """Create the CA if it is missing or expires soon; keep the hashed directory exact."""
        if self._needs_issue(self.ca_cert, self.ca_key, None):
            key = generate_key()
            cert = issue_certificate(dn, key, None, key, ca=True, days=days)
            for stale in self.ca_dir.glob(f"{subject_hash(cert.subject)}.*"):
                stale.unlink()  # an older CA of the same name (and its CRLs)
            write_private(self.ca_key, key_to_pem(key))
            write_public(self.ca_cert, cert_to_pem(cert))
            self.renewed.append("CA")
        install_hashed(self.ca_dir, [load_cert(self.ca_cert)])

    @staticmethod
    def _needs_issue(cert_path: Path, key_path: Path, ca: x509.Certificate | None) -> bool:
        if not cert_path.exists() or not key_path.exists():
            return True
        try:
            cert = load_cert(cert_path)
            if cert.not_valid_after_utc - utcnow() < RENEW_BEFORE:
                return True
            if ca is not None:
                cert.verify_directly_issued_by(ca)
        except Exception:  # noqa: BLE001 - unreadable, or not signed by this CA: reissue
            return True
        return False

    def _ca(self) -> tuple[x509.Certificate, PrivateKey]:
        if not self.ca_cert.exists():
            raise AuthError(f"no CA in {self.directory}: run `seproxy pki init` first")
        return load_cert(self.ca_cert), load_key(self.ca_key)

    def issue(self, dn: str, cert_path: Path, key_path: Path, **kwargs) -> tuple[Path, Path]:
        """Issue a certificate for ``dn`` (kwargs as :func:`issue_certificate`) into files."""
        ca_cert, ca_key = self._ca()
        key = generate_key()
        cert = issue_certificate(dn, key, ca_cert, ca_key, **kwargs)
        write_private(key_path, key_to_pem(key))
        write_public(cert_path, cert_to_pem(cert))
        return cert_path, key_path

    def issue_host(self, hostnames: Sequence[str], *, cert_path: Path | None = None,
                   key_path: Path | None = None, **kwargs) -> tuple[Path, Path]:
        """Host certificate: CN = first name; SAN = the names, localhost, 127.0.0.1, ::1."""
        if not hostnames:
            raise AuthError("a host certificate needs at least one host name")
        names = list(hostnames)
        ips = [n for n in names if _is_ip(n)] + ["127.0.0.1", "::1"]
        dns = [n for n in names if not _is_ip(n)] + ["localhost"]
        return self.issue(f"{DN_PREFIX}/CN={names[0]}", cert_path or self.host_cert,
                          key_path or self.host_key, dns_names=dns, ip_addresses=ips,
                          server=True, client=True, **kwargs)

    def issue_user(self, name: str, dn: str | None = None, **kwargs) -> tuple[Path, Path]:
        cert, key = self.user_paths(name)
        return self.issue(dn or f"{DN_PREFIX}/CN={name}", cert, key, **kwargs)

    def write_crl(self, revoked_serials: Iterable[int], directory: Path | None = None) -> Path:
        """Write a CRL of this CA revoking ``revoked_serials`` as ``<hash>.r0``."""
        ca_cert, ca_key = self._ca()
        crl = create_crl(ca_cert, ca_key, revoked_serials)
        return install_hashed(directory or self.ca_dir, crls=[crl])[0]

    def make_proxy(self, out: Path, *, user: str = "testuser", group: str | None = None,
                   limited: bool = False, lifetime: int = DEFAULT_PROXY_LIFETIME) -> Path:
        cert, key = self.user_paths(user)
        return write_private(out, create_proxy(load_cert(cert), load_key(key), group=group,
                                               limited=limited, lifetime=lifetime))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
