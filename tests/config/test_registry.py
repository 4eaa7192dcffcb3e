"""Registry look-ups (PROTOCOL.md 8.5 / 9.3)."""

from __future__ import annotations

import pytest

from seproxy.config import Config, Registry
from seproxy.errors import AuthError

REG = """
Registry
{
  DefaultGroup = dirac_user
  BannedIPs = 10.0.0.66, 10.0.0.67
  Users
  {
    testuser
    {
      DN = /C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser, /C=ch/O=DIRAC/CN=testuser2
      Suspended = lhcb
    }
    prefers
    {
      DN = /CN=prefers
      DefaultGroup = dirac_admin
    }
    lonely
    {
      DN = /CN=lonely
    }
    other
    {
      DN = /CN=other
    }
  }
  Groups
  {
    dirac_user
    {
      Users = testuser, prefers
      Properties = NormalUser
      VO = dirac
    }
    dirac_admin
    {
      Users = testuser, prefers
      Properties = CSAdministrator, NormalUser
      VO = dirac
    }
    b_group
    {
      Users = other
      Properties = NormalUser
    }
    a_group
    {
      Users = other
      VO = lhcb
    }
  }
  Hosts
  {
    se.example.org
    {
      DN = /CN=se.example.org
      Properties = TrustedHost, CSAdministrator
    }
  }
}
"""


@pytest.fixture
def reg() -> Registry:
    return Registry(Config.from_text(REG))


def test_users_and_dns(reg: Registry) -> None:
    assert reg.username_for_dn("/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser") == "testuser"
    assert reg.username_for_dn("  /C=ch/O=DIRAC/CN=testuser2 ") == "testuser"
    assert reg.username_for_dn("/CN=nobody") is None
    assert reg.dns_for_user("testuser") == ["/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser", "/C=ch/O=DIRAC/CN=testuser2"]
    assert reg.groups_for_user("testuser") == ["dirac_admin", "dirac_user"]
    assert reg.users_in_group("dirac_user") == ["testuser", "prefers"]


def test_default_group(reg: Registry) -> None:
    assert reg.default_group_for_dn("/C=ch/O=DIRAC/CN=testuser2") == "dirac_user"
    assert reg.default_group_for_dn("/CN=prefers") == "dirac_admin"  # user's own list first
    assert reg.default_group_for_dn("/CN=other") == "a_group"  # no preferred: first sorted group
    with pytest.raises(AuthError, match="User lonely has no groups"):
        reg.default_group_for_dn("/CN=lonely")
    with pytest.raises(AuthError, match="No username found for dn /CN=ghost"):
        reg.default_group_for_dn("/CN=ghost")


def test_properties_hosts_vo(reg: Registry) -> None:
    assert reg.group_properties("dirac_admin") == ["CSAdministrator", "NormalUser"]
    assert reg.group_properties("missing") == []
    assert reg.hostname_for_dn("/CN=se.example.org") == "se.example.org"
    assert reg.hostname_for_dn("/CN=testuser") is None
    assert reg.host_properties("se.example.org") == ["TrustedHost", "CSAdministrator"]
    assert reg.vo_for_group("a_group") == "lhcb"
    assert reg.vo_for_group("b_group") == ""
    assert reg.groups_for_vo("dirac") == ["dirac_user", "dirac_admin"]
    assert reg.banned_ips() == ["10.0.0.66", "10.0.0.67"]
    assert reg.is_suspended("testuser", "lhcb") and not reg.is_suspended("testuser", "dirac")


def test_single_vo_installation(reg: Registry) -> None:
    reg.cfg.setOption("/DIRAC/VirtualOrganization", "dirac")
    assert reg.vo_for_group("b_group") == "dirac"
    assert reg.groups_for_vo("anything") == reg.groups()


def test_sees_config_changes(reg: Registry) -> None:
    assert reg.username_for_dn("/CN=new") is None
    reg.cfg.setOption("/Registry/Users/newbie/DN", "/CN=new")
    assert reg.username_for_dn("/CN=new") == "newbie"


def test_default_cfg_registry() -> None:
    reg = Registry(Config.load())
    assert set(reg.groups()) >= {"dirac_user", "dirac_admin"}
    assert reg.vo_for_group("dirac_user") == "dirac"
    assert reg.group_properties("dirac_user") == ["NormalUser"]
