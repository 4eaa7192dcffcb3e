"""The development PKI and DIRAC-style proxies, checked with the real ``openssl`` binary."""

from __future__ import annotations

import datetime
import re
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from seproxy.errors import AuthError
from seproxy.security import pki as devpki
from seproxy.security.extensions import (DIRAC_GROUP_OID, POLICY_LIMITED, PROXY_CERT_INFO_OID,
                                         ProxyCertInfo)
from seproxy.security.names import dn_to_name, name_to_dn, subject_hash
from tests.conftest import VECTORS_DIR


def openssl(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def verify(ca_dir: Path, pem: Path, *extra: str) -> subprocess.CompletedProcess:
    """``openssl verify`` of the first certificate of ``pem`` with the rest as chain."""
    return openssl("verify", "-allow_proxy_certs", "-CApath", ca_dir, *extra,
                   "-untrusted", pem, pem)


def _names() -> list[x509.Name]:
    attr, rdn, oid = x509.NameAttribute, x509.RelativeDistinguishedName, x509.NameOID
    bmp = x509.name._ASN1Type.BMPString
    return [
        dn_to_name("/C=ch/O=DIRAC/CN=DIRAC Test CA"),
        dn_to_name("/C=CH/O=  Some   Org /OU=MiXeD Case/CN=x"),
        dn_to_name("/DC=org/DC=terena/DC=tcs/C=DE/O=Uni Grüße/CN=Jörg Test"),
        dn_to_name("/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser/emailAddress=Someone@Example.ORG"),
        x509.Name([rdn([attr(oid.COUNTRY_NAME, "ch")]),
                   rdn([attr(oid.COMMON_NAME, "y"), attr(oid.ORGANIZATIONAL_UNIT_NAME, "a/b+c")]),
                   rdn([attr(oid.COMMON_NAME, "Bmp Ünï", _type=bmp)]),
                   rdn([attr(oid.COMMON_NAME, "tab\there")]),
                   rdn([attr(x509.ObjectIdentifier("1.2.3.4.5"), "custom")])]),
    ]


@pytest.mark.parametrize("name", _names(), ids=lambda n: n.rfc4514_string()[:30])
def test_subject_hash_and_dn_match_openssl(tmp_path, name):
    key = devpki.generate_key(1024)
    cert = devpki.issue_certificate(name, key, None, key, ca=True)
    path = devpki.write_public(tmp_path / "c.pem", devpki.cert_to_pem(cert))
    result = openssl("x509", "-hash", "-noout", "-in", path)
    assert result.returncode == 0, result.stderr
    assert subject_hash(cert.subject) == result.stdout.strip()
    oneline = openssl("x509", "-noout", "-subject", "-nameopt", "compat", "-in", path)
    assert oneline.stdout.strip() == "subject=" + name_to_dn(cert.subject)


@pytest.mark.parametrize("dn", [
    "/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser/CN=123",
    "/C=DE/O=Uni Gr\\xC3\\xBC\\xC3\\x9Fe/CN=y+OU=a\\/b/CN=p\\+q",
])
def test_dn_round_trip(dn):
    assert name_to_dn(dn_to_name(dn)) == dn


@pytest.mark.parametrize("dn", ["C=ch/CN=x", "/C=ch/CN", "/C=ch/XX=y", "/CN=\\xFF"])
def test_bad_dn(dn):
    with pytest.raises(AuthError):
        dn_to_name(dn)


def test_hashed_ca_dir(pki):
    ca = devpki.load_cert(pki.ca_cert)
    hashed = pki.ca_dir / f"{subject_hash(ca.subject)}.0"
    assert hashed.read_bytes() == pki.ca_cert.read_bytes()
    assert name_to_dn(ca.subject) == pki.ca_dn


def test_host_and_user_certificates_verify(pki):
    for cert in (pki.host_cert, pki.user_cert):
        result = verify(pki.ca_dir, cert)
        assert result.returncode == 0, result.stderr
    host = devpki.load_cert(pki.host_cert)
    assert name_to_dn(host.subject) == pki.host_dn
    san = host.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert name_to_dn(devpki.load_cert(pki.user_cert).subject) == pki.user_dn
    assert stat.S_IMODE(pki.host_key.stat().st_mode) == 0o600


def test_proxy_is_made_like_dirac(pki):
    path = pki.proxy(group="dirac_user", lifetime=3600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    blocks = re.findall(r"-----BEGIN ([A-Z ]+)-----", text)
    assert blocks == ["CERTIFICATE", "PRIVATE KEY", "CERTIFICATE"]
    proxy, user = x509.load_pem_x509_certificates(text.encode())
    assert user == devpki.load_cert(pki.user_cert)
    assert proxy.issuer == user.subject
    assert name_to_dn(proxy.subject) == f"{pki.user_dn}/CN={proxy.serial_number}"
    assert 0 < proxy.serial_number < 2**64
    skew = proxy.not_valid_after_utc - proxy.not_valid_before_utc
    assert skew == datetime.timedelta(seconds=3600 + 900)
    assert proxy.public_key().key_size == 2048
    info = proxy.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    assert info.critical
    assert info.value.value == bytes.fromhex("300c300a06082b06010505071501")
    usage = proxy.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.data_encipherment and usage.value.digital_signature
    group = proxy.extensions.get_extension_for_oid(DIRAC_GROUP_OID)
    assert not group.critical
    # The whole extension, as DIRAC writes it (PROTOCOL 8.3).
    ext_der = bytes.fromhex("3013060" "32a2a2a040c160a") + b"dirac_user"
    assert ext_der in proxy.tbs_certificate_bytes


@pytest.mark.parametrize("kind", ["plain", "limited", "nogroup", "proxy_of_proxy",
                                  "limited_of_limited"])
def test_openssl_accepts_good_proxies(pki, kind):
    if kind == "proxy_of_proxy":
        path = pki.proxy(parent=pki.proxy())
    elif kind == "limited_of_limited":
        path = pki.proxy(parent=pki.proxy(limited=True))
    else:
        path = pki.proxy(group=None if kind == "nogroup" else "dirac_user",
                         limited=kind == "limited")
    result = verify(pki.ca_dir, path)
    assert result.returncode == 0, result.stderr
    certs = x509.load_pem_x509_certificates(path.read_bytes())
    assert len(certs) == (3 if "of" in kind else 2)
    if kind.startswith("limited"):
        info = certs[0].extensions.get_extension_for_oid(PROXY_CERT_INFO_OID).value.value
        assert info == bytes.fromhex("300f300d060b2b060104019b5001010109")


def test_proxy_of_limited_proxy_stays_limited(pki):
    parent = pki.proxy(limited=True)
    child = x509.load_pem_x509_certificates(pki.proxy(parent=parent, limited=False).read_bytes())
    info = child[0].extensions.get_extension_for_oid(PROXY_CERT_INFO_OID).value.value
    assert ProxyCertInfo.from_der(info) == ProxyCertInfo(POLICY_LIMITED)


@pytest.mark.parametrize("attr, error", [
    ("expired_cert", "certificate has expired"),
    ("notyet_cert", "certificate is not yet valid"),
    ("other_user_cert", "unable to get local issuer certificate"),
    ("bad_subject_proxy", "proxy subject name violation"),
    ("legacy_proxy", "invalid CA certificate"),
    ("expired_proxy", "certificate has expired"),
])
def test_openssl_refuses_bad_credentials(pki, attr, error):
    result = verify(pki.ca_dir, getattr(pki, attr))
    assert result.returncode != 0
    assert error in result.stdout + result.stderr


def test_crl_revokes_only_the_revoked_cert(pki):
    revoked = verify(pki.crl_ca_dir, pki.revoked_cert, "-crl_check")
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    assert verify(pki.crl_ca_dir, pki.user_cert, "-crl_check").returncode == 0
    assert verify(pki.crl_ca_dir, pki.proxy(), "-crl_check_all").returncode == 0
    assert verify(pki.ca_dir, pki.revoked_cert).returncode == 0  # no CRL, no check


def test_other_ca_host_and_wrong_host(pki):
    assert verify(pki.other_ca_dir, pki.other_host_cert).returncode == 0
    assert verify(pki.ca_dir, pki.other_host_cert).returncode != 0
    assert verify(pki.ca_dir, pki.wrong_host_cert).returncode == 0
    host = verify(pki.ca_dir, pki.wrong_host_cert, "-verify_hostname", "localhost")
    assert host.returncode != 0 and "hostname mismatch" in host.stdout + host.stderr
    expired = verify(pki.ca_dir, pki.expired_host_cert)
    assert "certificate has expired" in expired.stdout + expired.stderr


def test_registry_cfg_is_the_vectors_registry(registry_cfg):
    readme = (VECTORS_DIR / "README.md").read_text()
    section = readme.split("### `credentials.jsonl`", 1)[1]
    block = re.search(r"```\n(Registry\n.*?)```", section, re.S).group(1)
    assert registry_cfg == block


def test_ensure_is_idempotent(tmp_path):
    first = devpki.DevPKI(tmp_path).ensure()
    ca = first.ca_cert.read_bytes()
    host = first.host_cert.read_bytes()
    second = devpki.DevPKI(tmp_path).ensure()
    assert second.ca_cert.read_bytes() == ca and second.host_cert.read_bytes() == host
    assert len(list(second.ca_dir.iterdir())) == 1


def test_ensure_renews_expiring_and_foreign_certificates(tmp_path):
    dev = devpki.DevPKI(tmp_path).ensure()
    assert dev.renewed == ["CA", "host", "user testuser"]
    assert devpki.DevPKI(tmp_path).ensure().renewed == []
    # A host certificate about to expire is reissued; the user certificate is kept.
    ca, ca_key = devpki.load_cert(dev.ca_cert), devpki.load_key(dev.ca_key)
    soon = devpki.utcnow() + datetime.timedelta(hours=5)
    short = devpki.issue_certificate(pki_host_dn(), devpki.load_key(dev.host_key), ca, ca_key,
                                     not_after=soon)
    dev.host_cert.write_bytes(devpki.cert_to_pem(short))
    user_before = dev.user_cert.read_bytes()
    assert dev.ensure().renewed == ["host"]
    assert devpki.load_cert(dev.host_cert).not_valid_after_utc > soon
    assert dev.user_cert.read_bytes() == user_before
    # A lost CA: a new one replaces it in the hashed directory, everything is reissued.
    dev.ca_key.unlink()
    assert dev.ensure().renewed == ["CA", "host", "user testuser"]
    assert len(list(dev.ca_dir.iterdir())) == 1
    for cert in (dev.host_cert, dev.user_cert):
        assert verify(dev.ca_dir, cert).returncode == 0


def pki_host_dn() -> str:
    return f"{devpki.DN_PREFIX}/CN=localhost"
