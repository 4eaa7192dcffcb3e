"""CredentialSource = delegation: the service asks for a delegated proxy in the proposal
answer (PROTOCOL.md 4.4); seproxy's and real DIRAC's clients delegate. One delegated proxy
per caller is reused while it has more than ProxyRenewMargin left."""

from __future__ import annotations

import time

import pytest
from cryptography import x509

from seproxy.errors import AuthError
from seproxy.handler.credentials import CredentialSource, delegation_key
from seproxy.rpc.client.base import RPCClient
from seproxy.security import delegation
from seproxy.security.x509 import X509Chain
from seproxy.storage.credentials import StorageCredentials
from seproxy.storage.credfiles import identity_of, proxy_bytes
from tests.handler.conftest import OTHER_DN

SE = "SE-LOCAL"
MARGIN = 1200


@pytest.fixture
def delegating(se_proxy_factory, monkeypatch):
    seen: list[bytes] = []
    proxy = se_proxy_factory(CredentialSource="delegation")
    state = proxy.state
    original = state.storage_element

    def recording(name, vo, credentials: StorageCredentials):
        seen.append(proxy_bytes(credentials))  # what the storage plugins are handed
        return original(name, vo, credentials)

    monkeypatch.setattr(state, "storage_element", recording)
    proxy.seen = seen
    return proxy


def test_seproxy_client_delegates_and_storage_gets_the_delegated_proxy(delegating):
    (delegating.storage / "dirac").mkdir()
    (delegating.storage / "dirac" / "d.txt").write_text("x")
    res = delegating.rpc().callProxyMethod(SE, "exists", ["/dirac/d.txt"], {})
    assert res["OK"] and res["Value"]["Successful"] == {"/dirac/d.txt": True}
    assert len(delegating.seen) == 1
    certs = x509.load_pem_x509_certificates(delegating.seen[0])
    user = x509.load_pem_x509_certificates(open(delegating.proxy(), "rb").read())
    assert certs[1:] == user  # signed by the connecting proxy, for the service's new key
    assert b"PRIVATE KEY" in delegating.seen[0]
    assert not any(p.name.startswith(("delegated-", "proxy-")) for p in (delegating.base / "tmp").rglob("*"))
    who = delegating.rpc().whoami()  # no storage: no delegation, and nothing secret in whoami
    assert who["OK"] and "delegatedChain" not in who["Value"]


@pytest.mark.interop
def test_dirac9_client_delegates(delegating, dirac9_client):
    client = dirac9_client.with_(proxy=delegating.proxy())
    for _ in range(2):  # the second connection is not asked to delegate: the first proxy is reused
        res = client.rpc(delegating.svc.url, "callProxyMethod", SE, "exists", ["/dirac/none"], {})
        assert res["OK"], res
        assert res["Value"]["Successful"] == {"/dirac/none": False}
    assert len(delegating.seen) == 2 and len(set(delegating.seen)) == 1
    assert delegating.state.credentials.delegations == 1


def test_accept_refuses_foreign_or_mismatched_chains(pki):
    request, key = delegation.make_request()
    proxy_pem = open(pki.proxy(), "rb").read()
    peer = x509.load_pem_x509_certificates(proxy_pem)
    chain = delegation.sign_request(request, proxy_pem)
    assert b"PRIVATE KEY" in delegation.accept(chain, key, peer)
    other_request, other_key = delegation.make_request()
    with pytest.raises(AuthError, match="not for the requested key"):
        delegation.accept(chain, other_key, peer)
    other_peer = x509.load_pem_x509_certificates(open(pki.proxy(), "rb").read())
    with pytest.raises(AuthError, match="not signed by the connection"):
        delegation.accept(chain, key, other_peer)
    with pytest.raises(AuthError):
        delegation.accept("garbage", key, peer)


# -- reuse: one delegated proxy per caller ---------------------------------------------------


def exists(proxy_under_test, proxy_file) -> None:
    """One callProxyMethod call on a new connection presenting ``proxy_file``."""
    client = RPCClient(proxy_under_test.svc.url, config=proxy_under_test.svc.cfg,
                       proxyLocation=str(proxy_file))
    res = client.callProxyMethod(SE, "exists", ["/dirac/none"], {})
    assert res["OK"] and res["Value"]["Successful"] == {"/dirac/none": False}, res


def user_proxy(delegating, name: str, user: str = "testuser", **kwargs):
    return delegating.pki.dev.make_proxy(delegating.base.parent / f"{name}.pem", user=user,
                                         group="dirac_user", **kwargs)


def test_calls_of_one_user_share_one_delegated_proxy(delegating):
    for _ in range(6):
        exists(delegating, delegating.proxy())
    assert delegating.state.credentials.delegations == 1  # one delegation exchange
    assert len(delegating.seen) == 6 and len(set(delegating.seen)) == 1  # one proxy at the storage
    assert identity_of(delegating.seen[0]) == delegating.pki.user_dn
    assert b"PRIVATE KEY" in delegating.seen[0]


def test_two_users_never_share_a_delegated_proxy(delegating):
    for _ in range(3):
        exists(delegating, delegating.proxy())
        exists(delegating, delegating.proxy("otheruser"))
    assert delegating.state.credentials.delegations == 2
    assert len(set(delegating.seen)) == 2
    assert [identity_of(pem) for pem in delegating.seen] == [delegating.pki.user_dn, OTHER_DN] * 3


def test_a_limited_caller_never_gets_a_full_proxy(delegating):
    full, limited = delegating.proxy(), user_proxy(delegating, "limited", limited=True)
    exists(delegating, full)
    exists(delegating, limited)
    exists(delegating, full)
    exists(delegating, limited)
    chains = [X509Chain.from_pem(pem) for pem in delegating.seen]
    assert [c.is_limited_proxy for c in chains] == [False, True, False, True]
    assert delegating.state.credentials.delegations == 2
    assert delegating.seen[0] == delegating.seen[2] and delegating.seen[1] == delegating.seen[3]


def test_an_expiring_delegated_proxy_is_replaced(delegating):
    now = [time.time()]
    delegating.state.credentials = CredentialSource("delegation", scratch_dir=delegating.base / "tmp",
                                                    delegation_margin=MARGIN, clock=lambda: now[0])
    short, long = user_proxy(delegating, "short", lifetime=3600), user_proxy(delegating, "long")
    exists(delegating, short)
    exists(delegating, long)  # the kept proxy has an hour left: reused, even for this connection
    assert delegating.state.credentials.delegations == 1
    now[0] += 3600 - MARGIN + 1  # the kept proxy has less than the margin left
    exists(delegating, long)
    exists(delegating, long)
    assert delegating.state.credentials.delegations == 2
    first, second = delegating.seen[0], delegating.seen[2]
    assert delegating.seen == [first, first, second, second] and first != second
    assert X509Chain.from_pem(second).not_after.timestamp() - now[0] > MARGIN


def test_a_forwarded_identity_is_never_kept(pki):
    """A DN that is not the connection's own (a trusted host acting for a user) gets a
    fresh delegation each time and nothing is kept for that DN."""
    source = CredentialSource("delegation")
    chain = X509Chain.from_file(pki.proxy())
    own = {"DN": pki.user_dn, "group": "dirac_user"}
    forwarded = {"DN": OTHER_DN, "group": "dirac_user"}
    assert delegation_key(forwarded, chain) is None and delegation_key(own, None) is None
    assert delegation_key({"DN": pki.user_dn}, chain) is None
    made = iter([b"one", b"two", b"three"])
    assert source.delegated_proxy(forwarded, chain, lambda: next(made)) == b"one"
    assert source.delegated_proxy(forwarded, chain, lambda: next(made)) == b"two"
    assert source.delegations == 2
    with pytest.raises(AuthError, match="No delegated proxy"), \
            source.for_caller({**forwarded, "group": "dirac_user"}, "dirac", None):
        pass
