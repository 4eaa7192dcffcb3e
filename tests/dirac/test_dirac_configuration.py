"""seproxy's ConfigurationRefresher against real DIRAC 9.1 master Configuration Servers:
initial fetch with the host certificate, a change committed through DIRAC's CSAPI taken
at the next refresh, failover to the second server, the last copy when both are down."""

from __future__ import annotations

import pytest

from seproxy.config import Config, Registry
from seproxy.dirac.configuration import ConfigurationRefresher
from tests.fixtures.cfgtext import cfg_text

pytestmark = pytest.mark.interop


def _local(site, pki, servers):
    """What a site.cfg holds: the CS URLs and this host's credentials."""
    return Config.from_text(cfg_text({"DIRAC": {
        "Configuration": {"Servers": ", ".join(servers)},
        "Security": {"CertFile": pki.host_cert, "KeyFile": pki.host_key, "CALocation": pki.ca_dir}}}))


def test_fetch_commit_failover_and_outage(dirac_site_factory, pki, tmp_path):
    site = dirac_site_factory(servers=2, proxy_manager=False)
    cfg = _local(site, pki, site.cs_urls)
    cfg.setOption("/DIRAC/PreferredURLPatterns", site.cs_urls[0].replace(".", r"\."))  # server 0 first
    refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg")
    refresher.initial()
    registry = Registry(cfg)
    assert refresher.source == site.cs_urls[0]
    assert registry.username_for_dn(site.users["alice"]) == "alice"
    assert not registry.is_suspended("alice", "dirac")

    # a ban committed through the master is there after one refresh
    assert site.commit([("/Registry/Users/alice/Suspended", "dirac")])["OK"]
    generation = cfg.generation
    assert refresher.refresh()
    assert cfg.generation > generation
    assert registry.is_suspended("alice", "dirac")

    # failover: server 0 stopped; a new user committed to server 1 arrives from it
    site.servers[0].stop()
    assert site.commit([("/Registry/Users/dave/DN", "/C=ch/O=DIRAC/CN=dave"),
                        ("/Registry/Groups/dirac_user/Users", "testuser, alice, bob, carol, dave")],
                       server=1)["OK"]
    assert refresher.refresh()
    assert refresher.source == site.cs_urls[1]
    assert registry.username_for_dn("/C=ch/O=DIRAC/CN=dave") == "dave"

    # both down: the configuration in use stays; a restart comes up from the local copy
    site.servers[1].stop()
    assert not refresher.refresh()
    assert refresher.outage
    assert registry.username_for_dn("/C=ch/O=DIRAC/CN=dave") == "dave"
    restarted = _local(site, pki, site.cs_urls)
    again = ConfigurationRefresher(restarted, local_copy=tmp_path / "copy.cfg")
    again.initial()
    assert again.version == refresher.version
    assert Registry(restarted).username_for_dn("/C=ch/O=DIRAC/CN=dave") == "dave"


def test_dirac8_configuration_server_and_the_8_0_layout(dirac_site_factory, pki, tmp_path):
    """A DIRAC 8.0.86 master (DEncode answers) serving the 8.0 layout: seproxy finds its
    service section under the instance named by /DIRAC/Setups/<Setup>/DataManagement."""
    section = {"Port": 9139, "CredentialSource": "ProxyManager"}
    site = dirac_site_factory(version=8, servers=1, proxy_manager=False, extra={
        "DIRAC": {"Setups": {"Production": {"DataManagement": "Prod"}}},
        "Systems": {"DataManagement": {"Prod": {"Services": {"StorageElementProxy": section}}}}})
    cfg = _local(site, pki, site.cs_urls)
    cfg.setOption("/DIRAC/Setup", "Production")  # the setup is local, as on a DIRAC 8.0 host
    refresher = ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg")
    refresher.initial()
    path = cfg.service_section("DataManagement/StorageElementProxy")
    assert path == "/Systems/DataManagement/Prod/Services/StorageElementProxy"
    assert cfg.getValue(f"{path}/CredentialSource") == "ProxyManager"
    assert Registry(cfg).username_for_dn(site.users["bob"]) == "bob"
    assert site.commit([(f"{path}/CredentialSource", "host")])["OK"]
    assert refresher.refresh()
    assert cfg.getValue(f"{path}/CredentialSource") == "host"
