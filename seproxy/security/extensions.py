"""The certificate extensions DIRAC proxies carry that ``cryptography`` does not parse.

==============================  ==========================  ===========================
extension                       OID                          value (extnValue contents)
==============================  ==========================  ===========================
proxyCertInfo (RFC 3820)        1.3.6.1.5.5.7.1.14           ``SEQUENCE { pCPathLenConstraint
                                (critical)                   INTEGER OPTIONAL, proxyPolicy
                                                             SEQUENCE { policyLanguage OID,
                                                             policy OCTET STRING OPTIONAL } }``
DIRAC group                     1.2.42.42 (non-critical)     ``IA5String`` group name
VOMS attribute certificates     1.3.6.1.4.1.8005.100.100.5   ``SEQUENCE OF SEQUENCE OF
                                                             AttributeCertificate`` (RFC 5755)
==============================  ==========================  ===========================

Policy languages: inherit-all ``1.3.6.1.5.5.7.21.1``, independent ``1.3.6.1.5.5.7.21.2``,
and the Globus/DIRAC limited-proxy language ``1.3.6.1.4.1.3536.1.1.1.9``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from seproxy.errors import AuthError
from seproxy.security import der

PROXY_CERT_INFO_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")
DIRAC_GROUP_OID = x509.ObjectIdentifier("1.2.42.42")
VOMS_AC_SEQ_OID = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")
VOMS_FQAN_OID = "1.3.6.1.4.1.8005.100.100.4"

POLICY_INHERIT_ALL = "1.3.6.1.5.5.7.21.1"
POLICY_INDEPENDENT = "1.3.6.1.5.5.7.21.2"
POLICY_LIMITED = "1.3.6.1.4.1.3536.1.1.1.9"


@dataclass(frozen=True)
class ProxyCertInfo:
    """Decoded RFC 3820 ``proxyCertInfo``."""

    policy_language: str
    path_length: int | None = None
    policy: bytes | None = None

    @property
    def limited(self) -> bool:
        return self.policy_language == POLICY_LIMITED

    def to_der(self) -> bytes:
        policy = der.encode_oid(self.policy_language)
        if self.policy is not None:
            policy += der.encode(der.OCTET_STRING, self.policy)
        body = b""
        if self.path_length is not None:
            body += der.encode_integer(self.path_length)
        body += der.encode(der.SEQUENCE, policy)
        return der.encode(der.SEQUENCE, body)

    @classmethod
    def from_der(cls, data: bytes) -> "ProxyCertInfo":
        items = der.parse_single(data, der.SEQUENCE).children()
        path_length = None
        if items and items[0].tag == der.INTEGER:
            path_length = der.decode_integer(items.pop(0).value)
            if path_length < 0:
                raise AuthError("proxyCertInfo: negative pCPathLenConstraint")
        if len(items) != 1 or items[0].tag != der.SEQUENCE:
            raise AuthError("proxyCertInfo: missing proxyPolicy")
        policy_items = items[0].children()
        if not policy_items or policy_items[0].tag != der.OID or len(policy_items) > 2:
            raise AuthError("proxyCertInfo: malformed proxyPolicy")
        policy = None
        if len(policy_items) == 2:
            if policy_items[1].tag != der.OCTET_STRING:
                raise AuthError("proxyCertInfo: policy is not an OCTET STRING")
            policy = policy_items[1].value
        return cls(der.decode_oid(policy_items[0].value), path_length, policy)


def proxy_cert_info_extension(limited: bool = False, path_length: int | None = None
                              ) -> x509.UnrecognizedExtension:
    language = POLICY_LIMITED if limited else POLICY_INHERIT_ALL
    return x509.UnrecognizedExtension(
        PROXY_CERT_INFO_OID, ProxyCertInfo(language, path_length).to_der())


def dirac_group_extension(group: str) -> x509.UnrecognizedExtension:
    try:
        encoded = group.encode("ascii")
    except UnicodeEncodeError:
        raise AuthError(f"DIRAC group name must be ASCII: {group!r}") from None
    return x509.UnrecognizedExtension(DIRAC_GROUP_OID, der.encode(der.IA5_STRING, encoded))


def decode_dirac_group(value: bytes) -> str:
    return der.parse_single(value, der.IA5_STRING).value.decode("ascii")


def _raw_extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension | None:
    try:
        return cert.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None


def read_proxy_cert_info(cert: x509.Certificate) -> tuple[ProxyCertInfo, bool] | None:
    """The certificate's ``proxyCertInfo`` and its critical flag, or None."""
    ext = _raw_extension(cert, PROXY_CERT_INFO_OID)
    if ext is None:
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
    return ProxyCertInfo.from_der(raw), ext.critical


def read_dirac_group(cert: x509.Certificate) -> str | None:
    ext = _raw_extension(cert, DIRAC_GROUP_OID)
    if ext is None:
        return None
    return decode_dirac_group(ext.value.value)


def read_voms_fqans(cert: x509.Certificate) -> list[str]:
    """FQANs of the VOMS attribute certificates embedded in ``cert`` (not validated).

    Walks ``SEQUENCE OF SEQUENCE OF AttributeCertificate``; in each AC's
    ``attributes`` finds the VOMS FQAN attribute (``SET { SEQUENCE { policyAuthority
    [0], SEQUENCE OF OCTET STRING } }``) and returns the strings in order.
    """
    ext = _raw_extension(cert, VOMS_AC_SEQ_OID)
    if ext is None:
        return []
    fqans: list[str] = []
    try:
        for ac_seq in der.parse_single(ext.value.value, der.SEQUENCE).children():
            for ac in ac_seq.children():
                acinfo = ac.children()[0]
                fqans.extend(_fqans_of_acinfo(acinfo))
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise AuthError(f"malformed VOMS extension: {exc}") from None
    return fqans


def _fqans_of_acinfo(acinfo: der.TLV) -> list[str]:
    # AttributeCertificateInfo: version, holder, issuer, signature, serial, validity,
    # attributes (SEQUENCE OF Attribute), ... -- attributes is the 7th element.
    fields = acinfo.children()
    attributes = fields[6] if len(fields) > 6 else None
    out: list[str] = []
    if attributes is None or attributes.tag != der.SEQUENCE:
        raise AuthError("malformed VOMS attribute certificate")
    for attribute in attributes.children():
        oid, values = attribute.children()[:2]
        if der.decode_oid(oid.value) != VOMS_FQAN_OID:
            continue
        for ietf_attr in values.children():
            for item in ietf_attr.children():
                if item.tag == der.SEQUENCE:
                    out.extend(v.value.decode("utf-8") for v in item.children())
    return out
