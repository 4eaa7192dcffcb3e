"""seproxy's ProxyManagerSource against DIRAC 9.1's ProxyManager (ProxyDB on MariaDB),
configured from the site's Configuration Servers, proxies uploaded by DIRAC."""

from __future__ import annotations

import pytest

from seproxy.config import Config
from seproxy.dirac.configuration import ConfigurationRefresher
from seproxy.dirac.proxymanager import ProxyManagerSource
from seproxy.errors import AuthError
from seproxy.security.x509 import X509Chain
from tests.interop.peer_services import SETUP_8

pytestmark = pytest.mark.interop


def _joined(site, tmp_path) -> Config:
    cfg = Config.from_text(site.seproxy_cfg())
    ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg").initial()
    assert cfg.getOption("/Systems/Framework/URLs/ProxyManager") == site.proxy_manager.url  # from the CS
    return cfg


def test_users_own_proxy_cached_and_dirac_messages(dirac_site, tmp_path):
    assert dirac_site.upload_proxy("bob")["OK"]
    cfg = _joined(dirac_site, tmp_path)
    source = ProxyManagerSource(cfg, lifetime=15600)
    bob = dirac_site.users["bob"]
    before = dirac_site.proxy_downloads(bob)
    proxy = source.proxy(bob, "dirac_user")
    chain = X509Chain.from_pem(proxy.pem)
    assert chain.identity_dn == bob and chain.dirac_group == "dirac_user"
    # DIRAC hands out up to 1.5 x the asked lifetime, never more than the stored proxy has
    assert 15600 - 120 <= chain.seconds_left <= 1.5 * 15600
    for _ in range(999):
        assert source.proxy(bob, "dirac_user") is proxy
    assert dirac_site.proxy_downloads(bob) - before == 1

    carol = dirac_site.users["carol"]  # never uploaded
    with pytest.raises(AuthError, match=f"{carol} has no proxy registered"):
        source.proxy(carol, "dirac_user")


def test_voms_proxy_is_asked_with_getvomsproxy_and_dirac_s_error_passed_on(dirac_site, tmp_path):
    """ProxyVOMS = yes and a group with a VOMSRole: getVOMSProxy. DIRAC 9.1's ProxyManager
    writes a DiracX token into the proxy before it runs voms-proxy-init, so without a DiracX
    installation (none here, nor a VOMS server) it answers with that error, unchanged."""
    assert dirac_site.upload_proxy("alice")["OK"]
    alice = dirac_site.users["alice"]
    before = dirac_site.db.sql("SELECT COUNT(*) FROM ProxyDB.ProxyDB_Log WHERE Action = "
                               f"'download voms proxy' AND TargetDN = '{alice}'")
    source = ProxyManagerSource(_joined(dirac_site, tmp_path), voms=True)
    with pytest.raises(AuthError, match=r"^ValueError\('Missing mandatory /DiracX/URL configuration'\)"):
        source.proxy(alice, "dirac_prod")  # VOMSRole /dirac/Role=production
    after = dirac_site.db.sql("SELECT COUNT(*) FROM ProxyDB.ProxyDB_Log WHERE Action = "
                              f"'download voms proxy' AND TargetDN = '{alice}'")
    assert int(after) == int(before) + 1  # it was getVOMSProxy that answered


def test_host_without_a_delegation_property_gets_dirac_s_refusal(dirac_site_factory, tmp_path):
    site = dirac_site_factory(servers=1, host_properties=("TrustedHost", "CSAdministrator"))
    assert site.upload_proxy("alice")["OK"]
    source = ProxyManagerSource(_joined(site, tmp_path))
    with pytest.raises(AuthError, match="^You can't get proxies!$"):
        source.proxy(site.users["alice"], "dirac_user")


def test_dirac8_proxy_manager_8_0_layout_and_its_voms_error(dirac_site_factory, tmp_path):
    """DIRAC 8.0.86's ProxyManager (what DIRAC 8.0's StorageElementProxy downloaded from),
    8.0 layout: found under /Systems/Framework/<Instance>/URLs; its getVOMSProxy has no
    DiracX step and fails where VOMS is missing (no voms-proxy-init/VOMS server here)."""
    site = dirac_site_factory(version=8, servers=1)
    assert site.upload_proxy("alice")["OK"]
    alice = site.users["alice"]
    cfg = Config.from_text(site.seproxy_cfg())
    cfg.setOption("/DIRAC/Setup", SETUP_8)  # the setup is local, as on a DIRAC 8.0 host
    ConfigurationRefresher(cfg, local_copy=tmp_path / "copy.cfg").initial()
    proxy = ProxyManagerSource(cfg).proxy(alice, "dirac_user")
    chain = X509Chain.from_pem(proxy.pem)
    assert chain.identity_dn == alice and chain.dirac_group == "dirac_user"
    assert site.proxy_downloads(alice) == 1
    with pytest.raises(AuthError) as info:
        ProxyManagerSource(cfg, voms=True).proxy(alice, "dirac_prod")
    # DIRAC's own message (here: "... StdErr: /bin/sh: 1: voms-proxy-init: not found")
    assert str(info.value).startswith("VOMS Error ( 1121 : Failed to set VOMS attributes. Command: "
                                      "['voms-proxy-init'")
    assert "'-voms', 'dirac:/dirac/Role=production'" in str(info.value)
