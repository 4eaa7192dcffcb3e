"""Proxies against real DIRAC (PyPI, 9.1 and 8.0): DIRAC reads ours exactly as we do, and
we read DIRAC-made proxies exactly as DIRAC does; both carry byte-identical extensions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seproxy.config import Config, Registry
from seproxy.security import pki as devpki
from seproxy.security.credentials import credential_dict
from seproxy.security.x509 import X509Chain, verify_with_ca_directory

pytestmark = pytest.mark.interop

#: Runs inside DIRAC's venv: args = [our proxy files, [(out, group, limited)], cert, key].
DIRAC_CODE = """
from DIRAC.Core.Security.X509Chain import X509Chain

def describe(path):
    chain = X509Chain()
    res = chain.loadProxyFromFile(path)
    if not res["OK"]:
        return res
    creds = chain.getCredentials(withRegistryInfo=False)
    if creds["OK"]:
        creds["Value"].pop("x509Chain", None)
    return {"creds": creds, "valid": chain.isValidProxy()["OK"],
            "group": chain.getDIRACGroup(ignoreDefault=True)}

ours = [describe(p) for p in args[0]]
made = []
for out, group, limited in args[1]:
    user = X509Chain()
    assert user.loadChainFromFile(args[2])["OK"] and user.loadKeyFromFile(args[3])["OK"]
    res = user.generateProxyToFile(out, 3600, diracGroup=group or False, limited=limited)
    made.append(describe(out) if res["OK"] else res)
result = {"ours": ours, "made": made}
"""

ODD_DN = "/C=ch/CN=y+OU=a\\/b\\+c/CN=J\\xC3\\xB6rg"
OUR_CASES = [dict(group="dirac_user"), dict(group=None), dict(group="dirac_admin", limited=True)]
MADE_CASES = [("dirac_user", False), (None, False), ("dirac_admin", True)]


@pytest.fixture(scope="module")
def registry(registry_cfg):
    return Registry(Config.from_text(registry_cfg + "DIRAC\n{\n  VirtualOrganization = dirac\n}\n"))


def without_seconds(creds: dict, version: int = 9) -> dict:
    """Comparable part; DIRAC 8.0 has no ``VO`` key (9.x added it; we follow 9.1)."""
    dropped = ("secondsLeft", "x509Chain") + (("VO",) if version < 9 else ())
    return {k: v for k, v in creds.items() if k not in dropped}


def extension_bytes(chain: X509Chain) -> list[tuple[str, bool, bytes]]:
    return [(e.oid.dotted_string, e.critical,
             e.value.value if hasattr(e.value, "value") and isinstance(e.value.value, bytes)
             else e.value.public_bytes()) for e in chain.leaf.extensions]


@pytest.mark.parametrize("version", [9, 8])
def test_proxies_both_ways(request, tmp_path, pki, registry, registry_cfg, version):
    client = request.getfixturevalue(f"dirac{version}_client").with_(cfg_extra=registry_cfg)
    ours = [pki.proxy(**case) for case in OUR_CASES]
    ours.append(pki.proxy(group="dirac_admin", parent=pki.proxy(group=None)))
    # Made by the command line, as a user would.
    cli_proxy = tmp_path / "cli-proxy.pem"
    made_by_cli = subprocess.run(
        [sys.executable, "-m", "seproxy", "proxy-init", "--cert", str(pki.user_cert), "--key",
         str(pki.user_key), "-g", "dirac_admin", "--limited", "--out", str(cli_proxy)],
        capture_output=True, text=True, timeout=120)
    assert made_by_cli.returncode == 0, made_by_cli.stderr
    ours.append(cli_proxy)
    # An identity whose DN needs OpenSSL's oneline escapes (multi-valued RDN, '/', '+', UTF-8).
    odd_cert, odd_key = pki.dev.issue(ODD_DN, tmp_path / "oddcert.pem", tmp_path / "oddkey.pem")
    ours.append(devpki.write_private(tmp_path / "oddproxy.pem", devpki.create_proxy(
        devpki.load_cert(odd_cert), devpki.load_key(odd_key), group="dirac_user")))
    made = [(str(tmp_path / f"dirac{i}.pem"), group, limited)
            for i, (group, limited) in enumerate(MADE_CASES)]
    outcome = client.run({"exec": DIRAC_CODE, "args": [[str(p) for p in ours], made,
                                                       str(pki.user_cert), str(pki.user_key)]})
    answer = outcome[0].unwrap()

    # DIRAC reads our proxies as we do (key order included).
    assert answer["ours"][-1]["creds"]["Value"]["identity"] == ODD_DN
    for path, seen in zip(ours, answer["ours"], strict=False):
        assert seen["valid"], seen
        dirac_creds = seen["creds"]["Value"]
        mine = credential_dict(X509Chain.from_file(path), registry, "dirac")
        assert ("VO" in dirac_creds) is (version >= 9)
        assert list(without_seconds(dirac_creds)) == list(without_seconds(mine, version))
        assert without_seconds(dirac_creds) == without_seconds(mine, version)
        assert (seen["group"]["Value"] or None) == X509Chain.from_file(path).dirac_group  # DIRAC: False

    # We read DIRAC's proxies as DIRAC does, and they match ours byte for byte in structure.
    for (path, group, limited), seen in zip(made, answer["made"], strict=False):
        assert seen["valid"], seen
        chain = X509Chain.from_file(path)
        verify_with_ca_directory(chain, pki.ca_dir)
        mine = credential_dict(chain, registry, "dirac")
        assert without_seconds(seen["creds"]["Value"]) == without_seconds(mine, version)
        assert list(without_seconds(seen["creds"]["Value"])) == list(without_seconds(mine, version))
        assert chain.is_limited_proxy is limited and chain.dirac_group == group
        twin = X509Chain.from_file(pki.proxy(group=group, limited=limited, lifetime=3600))
        assert extension_bytes(chain) == extension_bytes(twin)
        # DIRAC reads the clock twice (notBefore, notAfter): its span may be 1 s longer
        span = chain.leaf.not_valid_after_utc - chain.leaf.not_valid_before_utc
        twin_span = twin.leaf.not_valid_after_utc - twin.leaf.not_valid_before_utc
        assert abs((span - twin_span).total_seconds()) <= 1, (span, twin_span)
        assert chain.leaf.public_key().key_size == twin.leaf.public_key().key_size
        assert chain.subject_dn == f"{pki.user_dn}/CN={chain.leaf.serial_number}"
