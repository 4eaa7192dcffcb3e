"""seproxy.dirac.proxymanager with a scripted ProxyManager (signing requests with real
proxies of the test PKI): checks, cache, renewal margin, bound, one download per user
under concurrency. The same against DIRAC's ProxyManager: test_dirac_proxymanager.py."""

from __future__ import annotations

import threading

import pytest

from seproxy.config import Config
from seproxy.dirac.proxymanager import ProxyManagerSource
from seproxy.errors import AuthError, ConfigError
from seproxy.handler.credentials import CredentialSource
from seproxy.security.delegation import sign_request
from seproxy.security.x509 import X509Chain
from tests.fixtures.cfgtext import cfg_text


class FakeProxyManager:
    """Signs the request with the stored proxy of the asked DN (a dict DN -> proxy path)."""

    def __init__(self, stored: dict, lifetime: int = 20000) -> None:
        self.stored, self.lifetime = stored, lifetime
        self.calls: list[tuple] = []
        self.lock = threading.Lock()
        self.answer_for: dict = {}

    def __call__(self, method: str, *args):
        with self.lock:
            self.calls.append((method, *args))
        if method == "getStoredProxyStrength":
            return {"OK": True, "Value": 2048}
        dn, group, request, lifetime = args[:4]
        if dn not in self.stored:
            return {"OK": False, "Message": f"Can't get proxy: {dn} has no proxy registered"}
        signer = self.answer_for.get(dn, dn)
        pem = self.stored[signer].read_bytes()
        return {"OK": True, "Value": sign_request(request, pem, lifetime=min(lifetime, self.lifetime),
                                                  group=group)}

    def downloads(self) -> int:
        return sum(1 for c in self.calls if c[0] in ("getProxy", "getVOMSProxy"))


@pytest.fixture
def cfg(pki):
    return Config.from_text(cfg_text({"DIRAC": {"Security": {"CALocation": pki.ca_dir}}}))


@pytest.fixture
def stored(pki):
    bob_cert, _ = pki.dev.issue_user("bob")
    bob_dn = X509Chain.from_file(bob_cert).subject_dn
    out = pki.base / "bob-nogroup.pem"
    return {pki.user_dn: pki.proxy(group=None, lifetime=86400),
            bob_dn: pki.dev.make_proxy(out, user="bob", group=None, lifetime=86400)}


def test_downloaded_proxy_is_the_callers_with_our_key(cfg, stored, pki):
    fake = FakeProxyManager(stored)
    source = ProxyManagerSource(cfg, call=fake, lifetime=15600)
    proxy = source.proxy(pki.user_dn, "dirac_user")
    chain = X509Chain.from_pem(proxy.pem)
    assert chain.identity_dn == pki.user_dn and chain.dirac_group == "dirac_user"
    assert chain.private_key is not None
    assert 15000 < chain.seconds_left <= 15600
    assert [c[0] for c in fake.calls] == ["getStoredProxyStrength", "getProxy"]
    assert fake.calls[1][4] == 15600


def test_one_download_per_user_for_many_calls_also_concurrent(cfg, stored, pki):
    fake = FakeProxyManager(stored)
    source = ProxyManagerSource(cfg, call=fake)
    dns = list(stored)
    seen: dict[str, set] = {dn: set() for dn in dns}

    def work(dn: str) -> None:
        for _ in range(50):
            seen[dn].add(source.proxy(dn, "dirac_user"))

    threads = [threading.Thread(target=work, args=(dn,)) for dn in dns for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake.downloads() == 2 and source.downloads == 2
    assert all(len(seen[dn]) == 1 for dn in dns)
    assert all(X509Chain.from_pem(next(iter(seen[dn])).pem).identity_dn == dn for dn in dns)  # never another's


def test_renewed_within_the_margin_and_cache_bounded(cfg, stored, pki):
    now = [1_000_000_000.0]
    fake = FakeProxyManager(stored)
    source = ProxyManagerSource(cfg, call=fake, renew_margin=1200, cache_size=1, clock=lambda: now[0])
    first = source.proxy(pki.user_dn, "dirac_user")
    now[0] = first.not_after - 1300
    assert source.proxy(pki.user_dn, "dirac_user") is first
    now[0] = first.not_after - 1100
    assert source.proxy(pki.user_dn, "dirac_user") is not first
    assert fake.downloads() == 2
    other = next(dn for dn in stored if dn != pki.user_dn)
    source.proxy(other, "dirac_user")
    assert len(source) == 1  # bounded: the older entry went


def test_proxy_managers_message_passes_through(cfg, stored):
    source = ProxyManagerSource(cfg, call=FakeProxyManager(stored))
    with pytest.raises(AuthError, match="/CN=nobody has no proxy registered"):
        source.proxy("/CN=nobody", "dirac_user")


def test_someone_elses_proxy_is_refused(cfg, stored, pki):
    fake = FakeProxyManager(stored)
    other = next(dn for dn in stored if dn != pki.user_dn)
    fake.answer_for[pki.user_dn] = other  # a confused ProxyManager
    source = ProxyManagerSource(cfg, call=fake)
    with pytest.raises(AuthError, match="answered a proxy of .*bob"):
        source.proxy(pki.user_dn, "dirac_user")


def test_lifetime_must_exceed_margin(cfg):
    with pytest.raises(ConfigError, match="ProxyLifetime"):
        ProxyManagerSource(cfg, lifetime=600, renew_margin=1200)


def test_credential_source_in_memory_and_file_only_on_demand(cfg, stored, pki, tmp_path):
    source = CredentialSource("ProxyManager", scratch_dir=tmp_path,
                              proxy_manager=ProxyManagerSource(cfg, call=FakeProxyManager(stored)))
    cred = {"DN": pki.user_dn, "group": "dirac_user", "username": "testuser"}
    with source.for_caller(cred, "dirac") as creds:
        assert X509Chain.from_pem(creds.proxy_pem).identity_dn == pki.user_dn
        assert list(tmp_path.iterdir()) == []  # nothing on disk unless a plugin asks
        path = creds.proxy_location()
        assert path == creds.proxy_location()
        import os
        import stat

        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
        assert X509Chain.from_file(path).identity_dn == pki.user_dn
    assert list(tmp_path.iterdir()) == []  # removed after the call


def test_refusals_are_not_cached_and_leave_nothing_behind(cfg, stored, pki):
    fake = FakeProxyManager(stored)
    source = ProxyManagerSource(cfg, call=fake)
    for _ in range(3):
        with pytest.raises(AuthError):
            source.proxy("/CN=nobody", "dirac_user")
    assert fake.downloads() == 3 and source.downloads == 0  # asked each time, as DIRAC does
    assert len(source) == 0 and source._key_locks == {}
