"""X509Chain: proxy recognition, identity, DIRAC group, VOMS FQANs, chain verification."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from OpenSSL import crypto

from seproxy.errors import AuthError
from seproxy.security import der, extensions
from seproxy.security import pki as devpki
from seproxy.security.x509 import X509Chain, load_ca_directory, verify_with_ca_directory


@pytest.fixture(scope="module")
def user(pki):
    return devpki.load_cert(pki.user_cert), devpki.load_key(pki.user_key)


def chain_of(proxy_pem: bytes) -> X509Chain:
    return X509Chain.from_pem(proxy_pem)


def test_proxy_file(pki):
    chain = X509Chain.from_file(pki.proxy(group="dirac_user", lifetime=7200))
    assert len(chain.certificates) == 2 and chain.private_key is not None
    assert chain.is_proxy and not chain.is_limited_proxy and chain.proxy_count == 1
    assert chain.identity_dn == pki.user_dn
    assert chain.issuer_dn == pki.user_dn
    assert chain.subject_dn == f"{pki.user_dn}/CN={chain.leaf.serial_number}"
    assert chain.dirac_group == "dirac_user"
    now = devpki.utcnow()
    assert chain.seconds_left_at(now) == int((chain.leaf.not_valid_after_utc - now).total_seconds())
    assert 0 < chain.seconds_left <= 7200
    assert chain.voms_attributes == []
    chain.check_structure()


def test_to_pem_round_trips_the_proxy_file(pki):
    path = pki.proxy()
    assert X509Chain.from_file(path).to_pem() == path.read_bytes()


def test_limited_and_proxy_of_proxy(pki):
    limited = X509Chain.from_file(pki.proxy(limited=True))
    assert limited.is_limited_proxy
    parent = pki.proxy(group="dirac_user")
    child = X509Chain.from_file(pki.proxy(group="dirac_admin", parent=parent))
    assert child.proxy_count == 2 and not child.is_limited_proxy
    assert child.identity_dn == pki.user_dn
    assert child.issuer_dn == X509Chain.from_file(parent).subject_dn
    # The group closest to the identity wins: re-delegation cannot change it.
    assert child.dirac_group == "dirac_user"
    assert X509Chain.from_file(pki.proxy(group="dirac_admin", parent=pki.proxy(group=None))
                               ).dirac_group == "dirac_admin"
    assert X509Chain.from_file(pki.proxy(parent=pki.proxy(limited=True))).is_limited_proxy


def test_plain_certificate(pki):
    chain = X509Chain.from_file(pki.user_cert, pki.user_key)
    assert not chain.is_proxy and not chain.is_limited_proxy
    assert chain.identity_dn == chain.subject_dn == pki.user_dn
    assert chain.issuer_dn == pki.ca_dn
    assert chain.dirac_group is None
    assert chain.private_key is not None


def test_from_certificates_accepts_pyopenssl_der_and_pem(pki):
    chain = X509Chain.from_file(pki.proxy())
    as_openssl = [crypto.X509.from_cryptography(c) for c in chain.certificates]
    as_der = [c.public_bytes(devpki.serialization.Encoding.DER) for c in chain.certificates]
    for items in (as_openssl, as_der, chain.certificates):
        again = X509Chain.from_certificates(items)
        assert again.certificates == chain.certificates and again.private_key is None
    with pytest.raises(TypeError):
        X509Chain.from_certificates([object()])


@pytest.mark.parametrize("data, message", [
    (b"", "no certificate"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no certificate"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot read"),
])
def test_bad_pem(data, message):
    with pytest.raises(AuthError, match=message):
        X509Chain.from_pem(data)


def test_missing_file(tmp_path):
    with pytest.raises(AuthError, match="cannot read credentials"):
        X509Chain.from_file(tmp_path / "nope.pem")


def test_structure_refusals(pki, user):
    with pytest.raises(AuthError, match="does not extend"):
        X509Chain.from_file(pki.bad_subject_proxy).check_structure()
    with pytest.raises(AuthError, match="legacy"):
        X509Chain.from_file(pki.legacy_proxy).check_structure()
    cert, key = user
    noncritical, _ = devpki.create_proxy_certificate(
        [cert], key, rfc=False, extra_extensions=[(extensions.proxy_cert_info_extension(), False)])
    with pytest.raises(AuthError, match="not critical"):
        X509Chain([noncritical, cert]).check_structure()


def test_path_length_constraint(user):
    cert, key = user
    zero, zero_key = devpki.create_proxy_certificate([cert], key, path_length=0)
    assert extensions.read_proxy_cert_info(zero)[0].path_length == 0
    X509Chain([zero, cert]).check_structure()
    below, _ = devpki.create_proxy_certificate([zero, cert], zero_key)
    with pytest.raises(AuthError, match="path length"):
        X509Chain([below, zero, cert]).check_structure()


def _voms_extension(fqans: list[str]) -> x509.UnrecognizedExtension:
    """A structurally valid (unsigned) VOMS AC sequence carrying ``fqans``."""
    values = der.encode(der.SEQUENCE, b"".join(der.encode(der.OCTET_STRING, f.encode())
                                               for f in fqans))
    ietf = der.encode(der.SEQUENCE, der.encode(0xA0, der.encode(0x86, b"dirac://voms:15000"))
                      + values)
    attribute = der.encode(der.SEQUENCE, der.encode_oid(extensions.VOMS_FQAN_OID)
                           + der.encode(der.SET, ietf))
    algorithm = der.encode(der.SEQUENCE, der.encode_oid("1.2.840.113549.1.1.11"))
    acinfo = der.encode(der.SEQUENCE, b"".join([
        der.encode_integer(1), der.encode(der.SEQUENCE, b""), der.encode(0xA0, b""),
        algorithm, der.encode_integer(42), der.encode(der.SEQUENCE, b""),
        der.encode(der.SEQUENCE, attribute)]))
    ac = der.encode(der.SEQUENCE, acinfo + algorithm + der.encode(der.BIT_STRING, b"\x00"))
    return x509.UnrecognizedExtension(
        extensions.VOMS_AC_SEQ_OID, der.encode(der.SEQUENCE, der.encode(der.SEQUENCE, ac)))


def test_voms_fqans_reported(user):
    cert, key = user
    fqans = ["/dirac/Role=production/Capability=NULL", "/dirac/Role=NULL/Capability=NULL"]
    proxy, _ = devpki.create_proxy_certificate(
        [cert], key, extra_extensions=[(_voms_extension(fqans), False)])
    assert X509Chain([proxy, cert]).voms_attributes == fqans


def test_malformed_voms_is_an_auth_error(user):
    cert, key = user
    junk = x509.UnrecognizedExtension(extensions.VOMS_AC_SEQ_OID, b"\x30\x03\x30\x01\x05")
    proxy, _ = devpki.create_proxy_certificate([cert], key, extra_extensions=[(junk, False)])
    with pytest.raises(AuthError):
        _ = X509Chain([proxy, cert]).voms_attributes


# -- verification against the CA directory ------------------------------------

@pytest.mark.parametrize("kind", ["proxy", "limited", "proxy_of_proxy", "user", "host"])
def test_verify_accepts(pki, kind):
    if kind in ("user", "host"):
        chain = X509Chain.from_file(getattr(pki, f"{kind}_cert"))
    elif kind == "proxy_of_proxy":
        chain = X509Chain.from_file(pki.proxy(parent=pki.proxy()))
    else:
        chain = X509Chain.from_file(pki.proxy(limited=kind == "limited"))
    path = verify_with_ca_directory(chain, pki.ca_dir)
    assert path[-1] == devpki.load_cert(pki.ca_cert)
    assert path[:len(chain.certificates)] == chain.certificates
    verify_with_ca_directory(chain, pki.crl_ca_dir, check_crls=True)


@pytest.mark.parametrize("attr, message", [
    ("expired_cert", "has expired"),
    ("notyet_cert", "not yet valid"),
    ("other_user_cert", "unable to get a trusted issuer"),
    ("bad_subject_proxy", "does not extend"),
    ("legacy_proxy", "legacy"),
    ("expired_proxy", "has expired"),
])
def test_verify_refuses(pki, attr, message):
    with pytest.raises(AuthError, match=message):
        verify_with_ca_directory(X509Chain.from_file(getattr(pki, attr)), pki.ca_dir)


def test_verify_crls(pki):
    revoked = X509Chain.from_file(pki.revoked_cert)
    verify_with_ca_directory(revoked, pki.ca_dir)  # no CRL there
    with pytest.raises(AuthError, match="revoked"):
        verify_with_ca_directory(revoked, pki.crl_ca_dir)
    with pytest.raises(AuthError, match="no CRL"):
        verify_with_ca_directory(X509Chain.from_file(pki.user_cert), pki.ca_dir, check_crls=True)
    certs, crls = load_ca_directory(pki.crl_ca_dir)
    assert len(certs) == 1 and len(crls) == 1


def test_verify_refuses_untrusted_self_signed_and_non_ca_issuer(pki, user):
    other_ca = X509Chain.from_file(pki.other_ca_cert)
    with pytest.raises(AuthError, match="self-signed"):
        verify_with_ca_directory(other_ca, pki.ca_dir)
    cert, key = user
    # The user (not a CA) signs an ordinary certificate: refused.
    fake = devpki.issue_certificate("/C=ch/O=DIRAC/CN=fake", devpki.generate_key(1024), cert, key)
    with pytest.raises(AuthError, match="is not a CA"):
        verify_with_ca_directory(X509Chain([fake, cert]), pki.ca_dir)


def test_verify_at_a_given_time(pki):
    chain = X509Chain.from_file(pki.proxy(lifetime=3600))
    later = devpki.utcnow() + datetime.timedelta(hours=2)
    with pytest.raises(AuthError, match="has expired"):
        verify_with_ca_directory(chain, pki.ca_dir, now=later)
    assert chain.seconds_left_at(later) == 0


def test_traditional_rsa_key_and_encrypted_key(pki):
    chain = X509Chain.from_file(pki.proxy())
    key = chain.private_key
    pems = [c.public_bytes(devpki.serialization.Encoding.PEM) for c in chain.certificates]
    traditional = key.private_bytes(devpki.serialization.Encoding.PEM,
                                    devpki.serialization.PrivateFormat.TraditionalOpenSSL,
                                    devpki.serialization.NoEncryption())
    assert traditional.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    again = X509Chain.from_pem(pems[0] + traditional + pems[1])
    assert again.private_key.private_numbers() == key.private_numbers()
    encrypted = key.private_bytes(devpki.serialization.Encoding.PEM,
                                  devpki.serialization.PrivateFormat.PKCS8,
                                  devpki.serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(AuthError, match="cannot read the private key"):
        X509Chain.from_pem(pems[0] + encrypted + pems[1])
    with pytest.raises(AuthError, match="more than one private key"):
        X509Chain.from_pem(pems[0] + traditional + traditional)


def test_unlimited_proxy_below_a_limited_one_is_refused(user):
    cert, key = user
    limited, limited_key = devpki.create_proxy_certificate([cert], key, limited=True)
    # create_proxy_certificate itself refuses to do this, so sign it by hand.
    from cryptography.hazmat.primitives import hashes
    child_key = devpki.generate_key(1024)
    name = x509.Name([*limited.subject.rdns, x509.RelativeDistinguishedName(
        [x509.NameAttribute(x509.NameOID.COMMON_NAME, "42")])])
    child = (x509.CertificateBuilder().subject_name(name).issuer_name(limited.subject)
             .public_key(child_key.public_key()).serial_number(42)
             .not_valid_before(limited.not_valid_before_utc)
             .not_valid_after(limited.not_valid_after_utc)
             .add_extension(extensions.proxy_cert_info_extension(False), critical=True)
             .sign(limited_key, hashes.SHA256()))
    with pytest.raises(AuthError, match="derived from a limited one"):
        X509Chain([child, limited, cert]).check_structure()
