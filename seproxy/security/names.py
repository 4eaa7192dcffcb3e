"""Distinguished names: OpenSSL "oneline" slash form, and the OpenSSL subject hash.

DIRAC writes DNs as ``/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser``: the RDNs in
encoding order, each as ``<short name>=<value>``, multi-valued RDNs joined by ``+``.

The subject hash names the files of an OpenSSL hashed CA directory
(``<hash>.0``, CRLs ``<hash>.r0``). It is OpenSSL's ``X509_NAME_hash``: SHA-1
over the *canonical* encoding of the name, first four bytes read little-endian.
The canonical encoding is the concatenation of each RDN's ``SET`` (no outer
``SEQUENCE``), where every string value is turned into a UTF8String that is
trimmed, has its whitespace runs collapsed to one space and ASCII lower-cased.
"""

from __future__ import annotations

import hashlib

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


def name_to_dn(name: x509.Name) -> str:
    """``x509.Name`` -> ``/C=ch/O=DIRAC/CN=...`` (DIRAC / OpenSSL oneline form)."""
    parts = []
    for rdn in name.rdns:
        parts.append("+".join(
            f"{_SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)}={attr.value}"
            for attr in rdn
        ))
    return "".join("/" + part for part in parts)


def dn_to_name(dn: str) -> x509.Name:
    """``/C=ch/O=DIRAC/CN=...`` -> ``x509.Name`` (single-valued RDNs, in that order).

    Values must not contain ``/``; that is all DIRAC-style DNs need.
    """
    if not dn.startswith("/"):
        raise AuthError(f"not a slash-form DN: {dn!r}")
    attributes = []
    for part in dn[1:].split("/"):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise AuthError(f"malformed DN component {part!r} in {dn!r}")
        oid = _BY_SHORT_NAME.get(key)
        if oid is None:
            try:
                oid = x509.ObjectIdentifier(key)
            except ValueError:
                raise AuthError(f"unknown DN attribute {key!r} in {dn!r}") from None
        attributes.append(x509.NameAttribute(oid, value))
    return x509.Name(attributes)


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


def canonical_name_encoding(name_der: bytes) -> bytes:
    """OpenSSL's canonical encoding of a DER ``Name`` (input to the subject hash)."""
    out = bytearray()
    for rdn in der.parse_single(name_der, der.SEQUENCE).children():
        if rdn.tag != der.SET:
            raise AuthError("DER: Name component is not a SET")
        avas = []
        for ava in rdn.children():
            oid, value = ava.children()
            codec = _CANON_CODECS.get(value.tag)
            if codec is not None:
                text = value.value.decode(codec).encode("utf-8")
                value_der = der.encode(der.UTF8_STRING, _canonical_text(text))
            else:
                value_der = value.raw
            avas.append(der.encode(der.SEQUENCE, oid.raw + value_der))
        out += der.encode(der.SET, b"".join(sorted(avas)))
    return bytes(out)


def subject_hash(name: x509.Name) -> str:
    """OpenSSL ``X509_NAME_hash`` of a name as the 8 hex digits ``openssl x509 -hash`` prints."""
    digest = hashlib.sha1(canonical_name_encoding(name.public_bytes())).digest()
    return f"{int.from_bytes(digest[:4], 'little'):08x}"
