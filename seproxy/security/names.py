"""Distinguished names: OpenSSL "oneline" slash form, and the OpenSSL subject hash.

DIRAC writes DNs as ``/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser``: OpenSSL's
``X509_NAME_oneline`` (M2Crypto's ``str(X509_Name)``): the RDNs in encoding order, each
``<short name>=<value>``, members of a multi-valued RDN joined by ``+``, ``/`` and ``+``
in values escaped with ``\\``, bytes outside ``' '..'~'`` written as ``\\xHH``.

The subject hash names the files of an OpenSSL hashed CA directory
(``<hash>.0``, CRLs ``<hash>.r0``). It is OpenSSL's ``X509_NAME_hash``: SHA-1
over the *canonical* encoding of the name, first four bytes read little-endian.
The canonical encoding is the concatenation of each RDN's ``SET`` (no outer
``SEQUENCE``), where every string value is turned into a UTF8String that is
trimmed, has its whitespace runs collapsed to one space and ASCII lower-cased.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from seproxy.errors import AuthError
from seproxy.security import der

#: Short names OpenSSL prints in the oneline form.
_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.STREET_ADDRESS: "street",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
    NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.PSEUDONYM: "pseudonym",
    NameOID.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
    NameOID.JURISDICTION_COUNTRY_NAME: "jurisdictionC",
    NameOID.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
    NameOID.JURISDICTION_LOCALITY_NAME: "jurisdictionL",
    NameOID.INITIALS: "initials",
    NameOID.GENERATION_QUALIFIER: "generationQualifier",
    NameOID.X500_UNIQUE_IDENTIFIER: "x500UniqueIdentifier",
}
_BY_SHORT_NAME = {short: oid for oid, short in _SHORT_NAMES.items()}

#: String types OpenSSL canonicalises (ASN1_MASK_CANON) and how to decode them.
_CANON_CODECS = {
    der.UTF8_STRING: "utf-8",
    der.PRINTABLE_STRING: "latin-1",
    der.T61_STRING: "latin-1",
    der.IA5_STRING: "latin-1",
    der.VISIBLE_STRING: "latin-1",
    der.UNIVERSAL_STRING: "utf-32-be",
    der.BMP_STRING: "utf-16-be",
}
_SPACES = b" \t\n\v\f\r"
_GENERAL_STRING = 0x1B


def _oneline_value(tag: int, raw: bytes) -> str:
    """One value as ``X509_NAME_oneline`` prints it (bytes outside ' '..'~' as ``\\xHH``)."""
    keep = [True] * 4
    if tag == _GENERAL_STRING and len(raw) % 4 == 0:
        seen = [any(raw[i] for i in range(j, len(raw), 4)) for j in range(4)]
        if not any(seen[:3]):
            keep = [False, False, False, True]  # UCS-4 holding ASCII: keep the low bytes
    out = []
    for index, byte in enumerate(raw):
        if not keep[index & 3]:
            continue
        if byte < 0x20 or byte > 0x7E:
            out.append(f"\\x{byte:02X}")
        elif byte in (0x2F, 0x2B):  # '/' and '+'
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte))
    return "".join(out)


@lru_cache(maxsize=4096)
def name_to_dn(name: x509.Name) -> str:
    """``x509.Name`` -> ``/C=ch/O=DIRAC/CN=...``: OpenSSL's ``X509_NAME_oneline``, which is
    what DIRAC (M2Crypto) prints; multi-valued RDN members are joined with ``+``."""
    parts = []
    for rdn in der.parse_single(name.public_bytes(), der.SEQUENCE).children():
        members = []
        for ava in rdn.children():
            oid_tlv, value = ava.children()[:2]
            dotted = der.decode_oid(oid_tlv.value)
            short = _SHORT_NAMES.get(x509.ObjectIdentifier(dotted), dotted)
            members.append(f"{short}={_oneline_value(value.tag, value.value)}")
        parts.append("+".join(members))
    return "".join("/" + part for part in parts)


_TOKEN = re.compile(r"\\x([0-9A-Fa-f]{2})|\\(.)|([/+])|([^\\/+]+)", re.S)


def _split_dn(dn: str) -> list[list[str]]:
    """Split a oneline DN into RDNs of members, undoing ``\\/``, ``\\+`` and ``\\xHH``."""
    rdns: list[list[bytearray]] = []
    for hexbyte, escaped, separator, text in _TOKEN.findall(dn):
        if separator == "/":
            rdns.append([bytearray()])
        elif not rdns:
            raise AuthError(f"not a slash-form DN: {dn!r}")
        elif separator == "+":
            rdns[-1].append(bytearray())
        elif hexbyte:
            rdns[-1][-1].append(int(hexbyte, 16))
        else:
            rdns[-1][-1] += (escaped or text).encode("utf-8")
    try:
        return [[member.decode("utf-8") for member in rdn] for rdn in rdns]
    except UnicodeDecodeError:
        raise AuthError(f"DN is not UTF-8 once unescaped: {dn!r}") from None


def dn_to_name(dn: str) -> x509.Name:
    """``/C=ch/O=DIRAC/CN=...`` (as :func:`name_to_dn` writes it) -> ``x509.Name``."""
    if not dn.startswith("/"):
        raise AuthError(f"not a slash-form DN: {dn!r}")
    rdns = []
    for members in _split_dn(dn):
        attributes = []
        for member in members:
            key, sep, value = member.partition("=")
            if not sep or not value:
                raise AuthError(f"malformed DN component {member!r} in {dn!r}")
            oid = _BY_SHORT_NAME.get(key)
            if oid is None:
                try:
                    oid = x509.ObjectIdentifier(key)
                except ValueError:
                    raise AuthError(f"unknown DN attribute {key!r} in {dn!r}") from None
            try:
                attributes.append(x509.NameAttribute(oid, value))
            except ValueError as exc:
                raise AuthError(f"bad DN component {member!r}: {exc}") from None
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _canonical_text(raw: bytes) -> bytes:
    raw = raw.strip(_SPACES)
    out = bytearray()
    previous_space = False
    for byte in raw:
        if byte in _SPACES:
            if not previous_space:
                out.append(0x20)
            previous_space = True
            continue
        previous_space = False
        out.append(byte + 32 if 0x41 <= byte <= 0x5A else byte)
    return bytes(out)


def canonical_rdns(name_der: bytes) -> list[bytes]:
    """Each RDN of a DER ``Name`` in OpenSSL's canonical form (a DER ``SET``)."""
    out = []
    for rdn in der.parse_single(name_der, der.SEQUENCE).children():
        if rdn.tag != der.SET:
            raise AuthError("DER: Name component is not a SET")
        avas = []
        for ava in rdn.children():
            oid, value = ava.children()[:2]
            codec = _CANON_CODECS.get(value.tag)
            if codec is not None:
                try:
                    text = value.value.decode(codec).encode("utf-8")
                except UnicodeDecodeError:
                    raise AuthError("DER: undecodable string in a Name") from None
                value_der = der.encode(der.UTF8_STRING, _canonical_text(text))
            else:
                value_der = value.raw
            avas.append(der.encode(der.SEQUENCE, oid.raw + value_der))
        out.append(der.encode(der.SET, b"".join(sorted(avas))))
    return out


def canonical_name_encoding(name_der: bytes) -> bytes:
    """OpenSSL's canonical encoding of a DER ``Name`` (input to the subject hash;
    two names are equal for OpenSSL when these are equal)."""
    return b"".join(canonical_rdns(name_der))


def subject_hash(name: x509.Name) -> str:
    """OpenSSL ``X509_NAME_hash`` of a name as the 8 hex digits ``openssl x509 -hash`` prints."""
    digest = hashlib.sha1(canonical_name_encoding(name.public_bytes())).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"
