"""AuthManager: PROTOCOL.md 7.7 rule by rule, against a Registry like the credential vectors'."""

from __future__ import annotations

import pytest

from seproxy.config import Config
from seproxy.rpc.server.auth import AuthManager
from tests.conftest import load_vectors
from tests.fixtures.pki import REGISTRY_CFG

USER = "/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser"
HOST = "/C=ch/O=DIRAC/OU=DIRAC Test/CN=localhost"
UNKNOWN = "/C=ch/O=DIRAC/CN=nobody"

EXTRA = """
Registry
{
  Users
  {
    suspended
    {
      DN = /C=ch/O=DIRAC/CN=suspended
      Suspended = dirac
    }
    other
    {
      DN = /C=ch/O=DIRAC/CN=other
    }
  }
  Groups
  {
    dirac_user
    {
      Users = testuser, suspended
    }
    lhcb_user
    {
      Users = other
      Properties = NormalUser
      VO = lhcb
    }
  }
  Hosts
  {
    plainhost
    {
      DN = /C=ch/O=DIRAC/CN=plainhost
      Properties = NormalUser
    }
  }
}
Auth
{
  getAdminInfo = CSAdministrator
  remove = group:dirac_admin
  voOnly = vo:lhcb
  authOnly = authenticated
  mixedCase = csadministrator
  FileTransfer
  {
    Default = NormalUser
  }
}
"""


@pytest.fixture
def auth() -> AuthManager:
    cfg = Config.from_text(REGISTRY_CFG)
    cfg.merge_text(EXTRA)
    return AuthManager(cfg, "/Auth")


def proxy(dn=USER, group="dirac_user", **extra):
    cred = {"DN": dn, "identity": dn, "isProxy": True}
    if group:
        cred["group"] = group
    cred.update(extra)
    return cred


def test_no_dn_only_open_methods(auth):
    cred = {}
    assert auth.authQuery("ping", cred, ["all"]) and cred == {"properties": []}
    assert auth.authQuery("unlisted", {})  # nothing required anywhere: like "any"
    assert not auth.authQuery("getAdminInfo", {})
    assert not auth.authQuery("remove", {})  # a group restriction needs an identity


def test_user_with_proxy_group(auth):
    cred = proxy()
    assert auth.authQuery("whoami", cred, ["all"])
    assert (cred["username"], cred["group"], cred["properties"]) == ("testuser", "dirac_user", ["NormalUser"])


def test_default_group_for_proxy_without_group(auth):
    cred = proxy(group=None)
    assert auth.authQuery("whoami", cred, ["all"])
    assert cred["group"] == "dirac_user"


def test_property_required_and_reduced(auth):
    assert not auth.authQuery("getAdminInfo", proxy())
    cred = proxy(group="dirac_admin")
    assert auth.authQuery("getAdminInfo", cred)
    assert cred["properties"] == ["CSAdministrator"]
    cred = proxy(group="dirac_admin")
    assert auth.authQuery("mixedCase", cred)  # properties compare case-insensitively


def test_group_and_vo_rules(auth):
    assert auth.authQuery("remove", proxy(group="dirac_admin"))
    assert not auth.authQuery("remove", proxy(group="dirac_user"))
    assert auth.authQuery("voOnly", proxy(dn="/C=ch/O=DIRAC/CN=other", group="lhcb_user"))
    assert not auth.authQuery("voOnly", proxy())


def test_authenticated(auth):
    assert auth.authQuery("authOnly", proxy())
    assert not auth.authQuery("authOnly", proxy(dn=UNKNOWN, group=None))
    assert auth.authQuery("authOnly", proxy(dn=HOST, group=None, extraCredentials="hosts"))


def test_unknown_dn_is_anonymous_only_where_all(auth):
    cred = proxy(dn=UNKNOWN, group=None)
    assert auth.authQuery("ping", cred, ["all"])
    assert (cred["username"], cred["group"], cred["properties"]) == ("anonymous", "visitor", [])
    assert not auth.authQuery("getAdminInfo", proxy(dn=UNKNOWN, group=None))


def test_user_not_in_claimed_group(auth):
    assert not auth.authQuery("authOnly", proxy(group="lhcb_user"))


def test_hosts(auth):
    cred = {"DN": HOST, "extraCredentials": "hosts"}
    assert auth.authQuery("getAdminInfo", cred)
    assert (cred["username"], cred["group"]) == ("localhost", "hosts")
    unknown = {"DN": UNKNOWN, "extraCredentials": "hosts"}
    assert not auth.authQuery("getAdminInfo", unknown)
    unknown = {"DN": UNKNOWN, "extraCredentials": "hosts"}
    assert auth.authQuery("ping", unknown, ["all"]) and unknown["username"] == "anonymous"


def test_host_certificate_without_hosts_is_anonymous(auth):
    cred = {"DN": HOST}
    assert auth.authQuery("ping", cred, ["all"])
    assert (cred["username"], cred["group"], cred["properties"]) == ("anonymous", "visitor", [])


def test_forwarding_by_trusted_host(auth):
    cred = {"DN": HOST, "extraCredentials": [USER, "dirac_admin"]}
    assert auth.authQuery("getAdminInfo", cred)
    assert cred["DN"] == USER and cred["group"] == "dirac_admin" and cred["username"] == "testuser"
    assert "extraCredentials" not in cred


def test_forwarding_by_anyone_else_is_denied_even_for_all(auth):
    assert not auth.authQuery("ping", proxy(extraCredentials=[USER, "dirac_admin"]), ["all"])
    assert not auth.authQuery("ping", {"DN": "/C=ch/O=DIRAC/CN=plainhost",
                                       "extraCredentials": [USER, "dirac_admin"]}, ["all"])


def test_extra_credentials_group_for_plain_certificates_only(auth):
    plain = {"DN": USER, "extraCredentials": "dirac_admin"}
    assert auth.authQuery("getAdminInfo", plain) and plain["group"] == "dirac_admin"
    with_proxy = proxy(extraCredentials="dirac_admin")
    assert not auth.authQuery("getAdminInfo", with_proxy)
    assert with_proxy["group"] == "dirac_user" and with_proxy["extraCredentials"] == "dirac_admin"


def test_suspended_user(auth):
    dn = "/C=ch/O=DIRAC/CN=suspended"
    assert not auth.authQuery("authOnly", proxy(dn=dn))
    cred = proxy(dn=dn)
    assert auth.authQuery("ping", cred, ["all"]) and cred["username"] == "anonymous"


def test_rule_lookup_order(auth):
    assert auth.getValidPropertiesForMethod("getAdminInfo", ["all"]) == ["CSAdministrator"]
    assert auth.getValidPropertiesForMethod("other", "A, B") == ["A", "B"]
    assert auth.getValidPropertiesForMethod("FileTransfer/FromClient") == ["NormalUser"]
    assert auth.getValidPropertiesForMethod("other") == []


def test_credential_vectors_whoami_through_authorisation(auth):
    """The Registry-derived keys of DIRAC's recorded whoami answers come out the same."""
    checked = 0
    for vector in load_vectors("credentials.jsonl"):
        expected = vector["result"]
        value = expected.get("Value", expected) if isinstance(expected, dict) else None
        if not isinstance(value, dict) or "DN" not in value:
            continue
        cred = {k: v for k, v in value.items() if k not in ("username", "properties")}
        if "extraCredentials" not in value and value.get("subject") != value["DN"] and not value.get("isProxy"):
            continue  # forwarded identity: the handshake DN was the host's; covered above
        if value.get("group") == "visitor":
            cred.pop("group")
        assert auth.authQuery("whoami", cred, ["all"]), vector["desc"]
        assert cred.get("username") == value.get("username"), vector["desc"]
        assert cred.get("properties") == value.get("properties"), vector["desc"]
        checked += 1
    assert checked >= 5


def test_cached_decisions_match_and_follow_configuration_changes(auth):
    first, second = proxy(group="dirac_admin"), proxy(group="dirac_admin")
    assert auth.authQuery("getAdminInfo", first) and auth.authQuery("getAdminInfo", second)
    assert first == second and first["properties"] == ["CSAdministrator"]
    forwarded = [{"DN": HOST, "extraCredentials": [USER, "dirac_admin"]} for _ in range(2)]
    assert all(auth.authQuery("getAdminInfo", cred) for cred in forwarded)
    assert forwarded[0] == forwarded[1] and "extraCredentials" not in forwarded[1]
    auth.cfg.setOption("/Auth/getAdminInfo", "group:nobody")
    assert not auth.authQuery("getAdminInfo", proxy(group="dirac_admin"))
