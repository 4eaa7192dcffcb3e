"""CredentialSource = delegation: the service asks for a delegated proxy in the proposal
answer (PROTOCOL.md 4.4); seproxy's and real DIRAC's clients delegate."""

from __future__ import annotations

import pytest
from cryptography import x509

from seproxy.errors import AuthError
from seproxy.security import delegation
from seproxy.storage.credentials import StorageCredentials

SE = "SE-LOCAL"


@pytest.fixture
def delegating(se_proxy_factory, monkeypatch):
    seen: list[bytes] = []
    proxy = se_proxy_factory(CredentialSource="delegation")
    state = proxy.state
    original = state.storage_element

    def recording(name, vo, credentials: StorageCredentials):
        with open(credentials.proxy_path, "rb") as fh:  # the per-call scratch file
            seen.append(fh.read())
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
    assert not any(p.name.startswith("delegated-") for p in (delegating.base / "tmp").rglob("*"))
    who = delegating.rpc().whoami()  # no storage: no delegation, and nothing secret in whoami
    assert who["OK"] and "delegatedChain" not in who["Value"]


@pytest.mark.interop
def test_dirac9_client_delegates(delegating, dirac9_client):
    client = dirac9_client.with_(proxy=delegating.proxy())
    res = client.rpc(delegating.svc.url, "callProxyMethod", SE, "exists", ["/dirac/none"], {})
    assert res["OK"], res
    assert res["Value"]["Successful"] == {"/dirac/none": False}
    assert len(delegating.seen) == 1


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
