"""Minimal DER reading and writing for the extensions ``cryptography`` leaves opaque.

``cryptography`` parses certificates, but exposes the RFC 3820 ``proxyCertInfo``,
DIRAC's group extension (1.2.42.42) and VOMS attribute certificates as raw bytes
(``UnrecognizedExtension``). This module reads and writes just enough DER for those:
definite-length TLVs with single-byte tags (low tag numbers), which is all these
structures use.

==========  =====================================================
byte(s)     meaning
==========  =====================================================
tag         class (2 bits) | constructed (1 bit) | number (5 bits)
length      < 0x80: the length; 0x81..0x84: that many length bytes follow
value       ``length`` bytes
==========  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from seproxy.errors import AuthError

INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
T61_STRING = 0x14
IA5_STRING = 0x16
VISIBLE_STRING = 0x1A
UNIVERSAL_STRING = 0x1C
BMP_STRING = 0x1E
SEQUENCE = 0x30
SET = 0x31

_MAX_LENGTH_BYTES = 4


@dataclass(frozen=True)
class TLV:
    """One decoded element: its tag byte, contents, and the full encoding."""

    tag: int
    value: bytes
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list["TLV"]:
        """The elements inside a constructed value."""
        return list(iter_tlvs(self.value))


def read_tlv(data: bytes, offset: int = 0) -> tuple[TLV, int]:
    """Decode the element at ``offset``; return it and the offset after it."""
    try:
        tag = data[offset]
        if tag & 0x1F == 0x1F:
            raise AuthError("DER: multi-byte tags are not supported")
        first = data[offset + 1]
        pos = offset + 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > _MAX_LENGTH_BYTES:
                raise AuthError("DER: indefinite or oversized length")
            length = int.from_bytes(data[pos:pos + count], "big")
            if len(data[pos:pos + count]) != count:
                raise AuthError("DER: truncated length")
            pos += count
    except IndexError:
        raise AuthError("DER: truncated element") from None
    end = pos + length
    if end > len(data):
        raise AuthError("DER: element longer than its container")
    return TLV(tag, bytes(data[pos:end]), bytes(data[offset:end])), end


def iter_tlvs(data: bytes) -> Iterator[TLV]:
    """Decode consecutive elements filling ``data`` exactly."""
    offset = 0
    while offset < len(data):
        tlv, offset = read_tlv(data, offset)
        yield tlv


def parse_single(data: bytes, tag: int | None = None) -> TLV:
    """Decode ``data`` as exactly one element (optionally of the given tag)."""
    tlv, end = read_tlv(data)
    if end != len(data):
        raise AuthError("DER: trailing bytes after element")
    if tag is not None and tlv.tag != tag:
        raise AuthError(f"DER: expected tag 0x{tag:02x}, found 0x{tlv.tag:02x}")
    return tlv


def encode(tag: int, value: bytes) -> bytes:
    """Encode one element."""
    length = len(value)
    if length < 0x80:
        header = bytes((tag, length))
    else:
        size = (length.bit_length() + 7) // 8
        header = bytes((tag, 0x80 | size)) + length.to_bytes(size, "big")
    return header + value


def encode_oid(dotted: str) -> bytes:
    """Encode an OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(part) for part in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))


def decode_oid(value: bytes) -> str:
    """Dotted form of OBJECT IDENTIFIER contents."""
    arcs: list[int] = []
    current = 0
    for byte in value:
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    if not arcs:
        raise AuthError("DER: empty OID")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - first * 40, *arcs[1:]])


def encode_integer(number: int) -> bytes:
    """Encode a non-negative INTEGER."""
    size = number.bit_length() // 8 + 1
    return encode(INTEGER, number.to_bytes(size, "big"))


def decode_integer(value: bytes) -> int:
    return int.from_bytes(value, "big", signed=True)
