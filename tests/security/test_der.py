"""The small DER codec and the extension decoders: round trips, and malformed input
never raises anything but AuthError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seproxy.errors import AuthError
from seproxy.security import der, extensions
from seproxy.security.names import canonical_rdns


@given(st.lists(st.integers(0, 2**40), min_size=2, max_size=8).map(
    lambda arcs: [min(arcs[0], 2), arcs[1] % 40] + arcs[2:]))
def test_oid_round_trip(arcs):
    dotted = ".".join(map(str, arcs))
    tlv = der.parse_single(der.encode_oid(dotted), der.OID)
    assert der.decode_oid(tlv.value) == dotted


@pytest.mark.parametrize("dotted", ["1.2.42.42", "1.3.6.1.4.1.3536.1.1.1.9", "2.999.3"])
def test_oid_matches_known_encodings(dotted):
    known = {"1.2.42.42": "06032a2a2a", "1.3.6.1.4.1.3536.1.1.1.9": "060b2b060104019b5001010109",
             "2.999.3": "0603883703"}
    assert der.encode_oid(dotted).hex() == known[dotted]


@given(st.binary(max_size=70000))
def test_long_lengths_round_trip(value):
    tlv = der.parse_single(der.encode(der.OCTET_STRING, value), der.OCTET_STRING)
    assert tlv.value == value


@given(st.integers(0, None), st.booleans())
def test_proxy_cert_info_round_trip(path_length, limited):
    language = extensions.POLICY_LIMITED if limited else extensions.POLICY_INHERIT_ALL
    info = extensions.ProxyCertInfo(language, path_length)
    assert extensions.ProxyCertInfo.from_der(info.to_der()) == info


@settings(max_examples=400)
@given(st.binary(max_size=64))
def test_malformed_input_only_raises_auth_error(data):
    for decode in (extensions.ProxyCertInfo.from_der, extensions.decode_dirac_group,
                   canonical_rdns, lambda d: list(der.iter_tlvs(d))):
        try:
            decode(data)
        except AuthError:
            pass


@pytest.mark.parametrize("data", [b"\x30", b"\x30\x85\x00\x00\x00\x00\x01", b"\x30\x80\x00\x00",
                                  b"\x1f\x01\x00", b"\x30\x05\x00", b"\x04\x01\x00\x00"])
def test_truncated_and_unsupported(data):
    with pytest.raises(AuthError):
        der.parse_single(data)
