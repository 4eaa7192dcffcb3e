"""RPCClient against a seproxy service over dips: identities, authorisation, encodings."""

from __future__ import annotations

import pytest

from tests.fixtures.pki import PKI

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def svc(seproxy_service_module):
    return seproxy_service_module(name="Test/Tls", protocol="dips")


def test_whoami_user_proxy(svc, pki: PKI):
    result = svc.client(proxyLocation=str(pki.proxy(group="dirac_user"))).whoami()
    assert result["OK"], result
    value = result["Value"]
    assert value["DN"] == pki.user_dn and value["username"] == "testuser"
    assert value["group"] == "dirac_user" and value["properties"] == ["NormalUser"]
    assert value["isProxy"] is True and "x509Chain" not in value


def test_whoami_limited_proxy(svc, pki: PKI):
    value = svc.client(proxyLocation=str(pki.proxy(limited=True))).whoami()["Value"]
    assert value["isLimitedProxy"] is True and value["username"] == "testuser"


def test_whoami_host(svc, pki: PKI):
    value = svc.client(useCertificates=True).whoami()["Value"]
    assert value["extraCredentials"] == "hosts" and value["group"] == "hosts"
    assert value["username"] == "localhost" and value["properties"] == ["TrustedHost", "CSAdministrator"]


def test_whoami_forwarded_by_trusted_host(svc, pki: PKI):
    client = svc.client(useCertificates=True, delegatedDN=pki.user_dn, delegatedGroup="dirac_admin")
    value = client.whoami()["Value"]
    assert value["DN"] == pki.user_dn and value["group"] == "dirac_admin"
    assert value["username"] == "testuser" and "extraCredentials" not in value
    assert value["subject"] == pki.host_dn


def test_forwarding_by_a_user_is_refused(svc, pki: PKI):
    client = svc.client(extraCredentials=[pki.user_dn, "dirac_admin"])
    result = client.whoami()
    assert result["OK"] is False and result["Errno"] == 1111


@pytest.mark.parametrize("encoding", ["json", "dencode"])
def test_refresh_configuration_needs_cs_administrator(svc, pki: PKI, encoding):
    user = svc.client(encoding=encoding).refreshConfiguration(False)
    assert user["OK"] is False and user["Message"] == "Unauthorized query ( 1111 : Unauthorized query)"
    admin = svc.client(encoding=encoding, proxyLocation=str(pki.proxy(group="dirac_admin")))
    assert admin.refreshConfiguration(False)["OK"]


def test_refresh_configuration_rereads_files(seproxy_service, pki: PKI, tmp_path):
    extra = tmp_path / "extra.cfg"
    extra.write_text("Systems\n{\n  Test\n  {\n    Services\n    {\n      Reload\n      {\n"
                     "        Authorization\n        {\n          echo = CSAdministrator\n        }\n"
                     "      }\n    }\n  }\n}\n")
    svc = seproxy_service(name="Test/Reload", protocol="dips")
    svc.cfg.merge_file(extra)
    user = svc.client()
    assert user.echo("x")["Errno"] == 1111
    extra.write_text("")
    admin = svc.client(proxyLocation=str(pki.proxy(group="dirac_admin")))
    assert admin.refreshConfiguration(True)["OK"]
    assert user.echo("x")["Value"] == "x"


def test_rpc_stub_and_url_resolution(svc, pki: PKI):
    from seproxy.rpc.client.base import RPCClient
    svc.cfg.setOption("/Systems/Test/URLs/Tls", f"dips://127.0.0.1:1/Test/Tls, {svc.url}")
    client = RPCClient("Test/Tls", config=svc.cfg, proxyLocation=svc.default_proxy, retryDelay=0.01)
    result = client.echo("via name")
    assert result["Value"] == "via name"
    assert result["rpcStub"][0][0] == "Test/Tls" and result["rpcStub"][1:] == ["echo", ["via name"]]


def test_unreachable_service_is_a_clear_error(svc):
    from seproxy.rpc.client.base import RPCClient
    client = RPCClient("dips://127.0.0.1:1/Test/Tls", config=svc.cfg, retryDelay=0.01)
    result = client.ping()
    assert result["OK"] is False and "Can't connect to dips://127.0.0.1:1/Test/Tls" in result["Message"]


def test_main_servers_placeholder():
    from seproxy.config import Config
    from seproxy.rpc.client.base import resolve_urls
    cfg = Config.from_text("Systems\n{\n  Test\n  {\n    URLs\n    {\n"
                           "      Tls = dips://$MAINSERVERS$:9135/Test/Tls\n    }\n  }\n}\n"
                           "Operations\n{\n  Defaults\n  {\n    MainServers = a.example.org, b.example.org\n"
                           "  }\n}\n", use_default=False)
    urls, name = resolve_urls(cfg, "Test/Tls")
    assert name == "Test/Tls"
    assert sorted(urls) == ["dips://a.example.org:9135/Test/Tls", "dips://b.example.org:9135/Test/Tls"]
