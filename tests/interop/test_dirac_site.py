"""The DIRAC installation fixture itself (tests/interop/peer_site.py): real DIRAC 9.1
Configuration Servers, MariaDB and ProxyManager on loopback, used the way DIRAC uses them."""

from __future__ import annotations

import zlib

import pytest

from tests.fixtures.cfgtext import cfg_text
from tests.interop.peer_services import merge_cfg

pytestmark = pytest.mark.interop

_READ_USERS = "from DIRAC import gConfig\nresult = gConfig.getSections('/Registry/Users')"

_DOWNLOAD = """
from DIRAC.FrameworkSystem.Client.ProxyManagerClient import ProxyManagerClient
res = ProxyManagerClient().downloadProxy(args[0], args[1], requiredTimeLeft=3600, cacheTime=0)
if res["OK"]:
    chain = res["Value"]
    result = {"DN": chain.getIssuerCert()["Value"].getSubjectDN()["Value"],
              "identity": chain.getCredentials()["Value"]["identity"],
              "group": chain.getDIRACGroup()["Value"],
              "secondsLeft": chain.getRemainingSecs()["Value"]}
else:
    result = res
"""


def _host_client(site):
    """A DIRAC client presenting the host certificate (as a DIRAC service would)."""
    pki = site.pki
    security = cfg_text({"DIRAC": {"Security": {
        "UseServerCertificate": "yes", "CertFile": pki.host_cert, "KeyFile": pki.host_key}},
        "Systems": {"Framework": {"URLs": {"ProxyManager": site.proxy_manager.url}}}})
    return site.client(None, cfg_extra=merge_cfg(site.client_cfg(), security))


def test_configuration_server_serves_the_site(dirac_site, pki):
    client = dirac_site.client(pki.proxy("dirac_user"))
    first, users, again = client.run(
        {"rpc": dirac_site.cs_urls[0], "method": "getCompressedDataIfNewer", "args": ["0"]},
        {"exec": _READ_USERS},
        {"rpc": dirac_site.cs_urls[1], "method": "getVersion"})
    answer = first.unwrap()
    assert answer["OK"], answer
    text = zlib.decompress(answer["Value"]["data"]).decode()
    assert "CN=alice" in text and f"Version = {answer['Value']['newestVersion']}" in text
    assert set(users.unwrap()["Value"]) == {"testuser", "alice", "bob", "carol"}
    assert again.unwrap()["OK"]


def test_commit_through_csapi_is_served_with_a_newer_version(dirac_site_factory, pki):
    site = dirac_site_factory(servers=1, proxy_manager=False)
    client = site.client(pki.proxy("dirac_user"))
    before = client.rpc(site.cs_urls[0], "getVersion")["Value"]
    committed = site.commit([("/Registry/Users/bob/Suspended", "dirac")])
    assert committed["OK"], committed
    after = client.rpc(site.cs_urls[0], "getCompressedDataIfNewer", before)["Value"]
    assert after["newestVersion"] > before
    assert "Suspended = dirac" in zlib.decompress(after["data"]).decode()
    unchanged = client.rpc(site.cs_urls[0], "getCompressedDataIfNewer", after["newestVersion"])
    assert "data" not in unchanged["Value"]


def test_proxy_manager_hands_out_the_uploaded_proxy(dirac_site):
    uploaded = dirac_site.upload_proxy("alice")
    assert uploaded["OK"], uploaded
    assert dirac_site.users["alice"] in uploaded["Value"]
    got, missing = _host_client(dirac_site).run(
        {"exec": _DOWNLOAD, "args": [dirac_site.users["alice"], "dirac_user"]},
        {"exec": _DOWNLOAD, "args": [dirac_site.users["carol"], "dirac_user"]})
    value = got.unwrap()
    assert value["identity"] == dirac_site.users["alice"]
    assert value["group"] == "dirac_user"
    assert value["secondsLeft"] > 3600
    refused = missing.unwrap()
    assert not refused["OK"]
    assert f'{dirac_site.users["carol"]} has no proxy registered' in refused["Message"]
