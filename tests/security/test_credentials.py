"""credential_dict against DIRAC's own answers (tests/data/dirac-vectors/credentials.jsonl).

The vectors are ``whoami`` answers: the post-handshake dict (PROTOCOL 8.1) plus what
the proposal and authorisation add (8.2: ``extraCredentials``, ``properties``,
``username``, and ``group`` for non-proxy clients). We rebuild the chain of each
case with the test PKI, strip those later keys from DIRAC's answer, and compare key
order and values (the proxy serial in ``subject`` and ``secondsLeft`` vary).
"""

from __future__ import annotations

import re

import pytest

from seproxy.config import Config, Registry
from seproxy.errors import AuthError
from seproxy.security.credentials import credential_dict
from seproxy.security.x509 import X509Chain
from tests.conftest import load_vectors

LATER_KEYS = {"extraCredentials", "properties", "username"}

#: desc suffix -> how to build the client chain; None: needs a live proposal.
CASES = {
    "whoami proxy with group": dict(proxy=dict(group="dirac_user")),
    "whoami proxy no group": dict(proxy=dict(group=None)),
    "whoami limited proxy": dict(proxy=dict(group="dirac_user", limited=True)),
    "whoami host cert": dict(cert="host"),
    "whoami host cert forwarding user": None,  # DN replaced by the forwarded identity
    "whoami proxy extraCredentials string": dict(proxy=dict(group="dirac_user")),
    "RFC proxy with DIRAC group extension, TLS1.3": dict(proxy=dict(group="dirac_user")),
    "plain user certificate (not a proxy)": dict(cert="user"),
    "host certificate without extraCredentials 'hosts'": dict(cert="host"),
}


def case_of(desc: str):
    for suffix, how in CASES.items():
        if desc.endswith(suffix):
            return how
    return None


VECTORS = [v for v in load_vectors("credentials.jsonl") if v["result"]["OK"]]


@pytest.fixture(scope="module")
def registry(registry_cfg):
    cfg = Config.from_text(registry_cfg + "DIRAC\n{\n  VirtualOrganization = dirac\n}\n")
    return Registry(cfg)


def test_every_successful_vector_is_classified():
    assert len(VECTORS) == 9
    assert all(any(v["desc"].endswith(s) for s in CASES) for v in VECTORS)


@pytest.mark.parametrize("vector", [v for v in VECTORS if case_of(v["desc"])],
                         ids=lambda v: v["desc"].split(": ")[-1])
def test_matches_dirac(pki, registry, vector):
    how = case_of(vector["desc"])
    if "proxy" in how:
        chain = X509Chain.from_file(pki.proxy(**how["proxy"]))
    else:
        chain = X509Chain.from_file(getattr(pki, f"{how['cert']}_cert"))
    dirac = vector["result"]["Value"]
    expected = {k: v for k, v in dirac.items() if k not in LATER_KEYS}
    if not dirac["isProxy"]:
        expected.pop("group", None)  # added by authorisation for certificate clients
    ours = credential_dict(chain, registry, "dirac")
    assert ours.pop("x509Chain") is chain
    assert list(ours) == list(expected)
    for key in ("secondsLeft", "subject"):
        assert isinstance(ours[key], type(expected[key]))
    assert ours["secondsLeft"] > 0
    if expected["isProxy"]:
        assert re.fullmatch(r"(.*)/CN=\d+", expected["subject"]).group(1) == expected["issuer"]
        assert ours["subject"] == f"{ours['issuer']}/CN={chain.leaf.serial_number}"
    ours_fixed = {k: v for k, v in ours.items() if k not in ("secondsLeft", "subject")}
    expected_fixed = {k: v for k, v in expected.items() if k not in ("secondsLeft", "subject")}
    assert ours_fixed == expected_fixed
    if not expected["isProxy"]:
        assert ours["subject"] == expected["subject"]


def test_proxy_of_unknown_user_has_no_group(pki, registry_cfg):
    empty = Registry(Config.from_text("Registry\n{\n}\n"))
    creds = credential_dict(X509Chain.from_file(pki.proxy(group=None)), empty, "dirac")
    assert "group" not in creds and "VO" not in creds
    assert creds["identity"] == pki.user_dn
    # The group from the extension needs no Registry; VO falls back to vo_default.
    creds = credential_dict(X509Chain.from_file(pki.proxy(group="g1")), None, "myvo")
    assert (creds["group"], creds["VO"]) == ("g1", "myvo")


def test_proxy_of_proxy_identity(pki, registry):
    chain = X509Chain.from_file(pki.proxy(parent=pki.proxy(group="dirac_admin", limited=True)))
    creds = credential_dict(chain, registry, "dirac")
    assert creds["DN"] == creds["identity"] == pki.user_dn
    assert creds["issuer"] != pki.user_dn and creds["issuer"].startswith(pki.user_dn + "/CN=")
    assert creds["group"] == "dirac_admin" and creds["isLimitedProxy"] is True


def test_bad_structure_refused(pki, registry):
    with pytest.raises(AuthError, match="legacy"):
        credential_dict(X509Chain.from_file(pki.legacy_proxy), registry, "dirac")
