"""The per-connection caches of the TLS transports: what a client resolves once
(``tlsconfig.client_setup``) and the credential dicts of verified peer chains
(``tlsconfig.credentials_for``).  A cache never replaces a check: files are stat'ed on
every connect, and a chain only reaches the credential cache after the TLS library
verified it in that very handshake."""

from __future__ import annotations

import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from seproxy.errors import AuthError
from seproxy.rpc.transport import tlsconfig
from tests.rpc.transport.tlshelpers import BACKENDS, roundtrip, tls_cfg


def _setup(cfg, proxy=None):
    return tlsconfig.client_setup(cfg, proxy_location=proxy, use_certificates=False,
                                  skip_ca_check=False)[0]


def test_client_setup_resolved_once_files_checked_each_time(pki, registry_cfg, tmp_path, monkeypatch):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend="pyopenssl")
    proxy = tmp_path / "proxy.pem"
    shutil.copy(pki.proxy(), proxy)
    first = _setup(cfg, str(proxy))
    assert _setup(cfg, str(proxy)) is first  # same object: cheap cache keys downstream
    assert (first.cert, first.ca_dir) == (str(proxy), str(pki.ca_dir))

    shutil.copy(pki.proxy(group="dirac_admin"), proxy)  # a renewed proxy: a new stamp
    renewed = _setup(cfg, str(proxy))
    assert renewed.cert == first.cert and renewed.stamp != first.stamp

    cfg.setOption("/DIRAC/Security/CALocation", str(pki.crl_ca_dir))  # a new generation
    assert _setup(cfg, str(proxy)).ca_dir == str(pki.crl_ca_dir)

    other = tmp_path / "other.pem"
    shutil.copy(pki.proxy(), other)
    monkeypatch.setenv("X509_USER_PROXY", str(other))  # the environment is part of the key
    assert _setup(cfg).cert == str(other)

    proxy.unlink()
    with pytest.raises(AuthError, match="Client credentials not found"):
        _setup(cfg, str(proxy))


def _ders(path) -> list[bytes]:
    return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(path.read_bytes())]


def test_credential_cache_exact_and_bounded(pki, registry_cfg, monkeypatch):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend="pyopenssl")
    monkeypatch.setattr(tlsconfig, "CREDENTIALS_MAX", 2)
    chains = [_ders(pki.proxy(group=g)) for g in ("dirac_user", "dirac_admin", "dirac_user")]
    built = [tlsconfig.credentials_for(ders, cfg) for ders in chains]
    assert [c[1]["group"] for c in built] == ["dirac_user", "dirac_admin", "dirac_user"]
    cache = tlsconfig._CREDENTIALS[cfg]
    assert len(cache) == 2 and (cfg.generation, *chains[0]) not in cache  # oldest entry dropped
    assert (cfg.generation, *chains[2]) in cache
    chain, creds = tlsconfig.credentials_for(chains[2], cfg)  # a hit: the same answer
    assert chain is built[2][0] and creds["x509Chain"] is chain
    assert {k: v for k, v in creds.items() if k != "secondsLeft"} == {
        k: v for k, v in built[2][1].items() if k != "secondsLeft"}
    assert 0 <= built[2][1]["secondsLeft"] - creds["secondsLeft"] <= 5
    creds["group"] = "changed"  # callers get copies
    assert tlsconfig.credentials_for(chains[2], cfg)[1]["group"] == "dirac_user"
    # a chain that differs in one certificate is another key (here: the leaf dropped)
    assert tlsconfig.credentials_for(chains[2][1:], cfg)[1]["isProxy"] is False


def test_credential_cache_follows_configuration_changes(pki, registry_cfg):
    """The default group comes from the Registry: after a configuration change the next
    connection's dict is built again, not taken from the cache."""
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend="pyopenssl")
    ders = _ders(pki.proxy(group=None))
    users = cfg.getSections("/Registry/Users")
    default = tlsconfig.credentials_for(ders, cfg)[1].get("group")
    cfg.setOption("/Registry/DefaultGroup", "dirac_admin")
    changed = tlsconfig.credentials_for(ders, cfg)[1].get("group")
    assert users and default != changed == "dirac_admin"


@pytest.mark.parametrize("backend", BACKENDS)
def test_cached_credentials_never_skip_verification(backend, pki, registry_cfg, echo_server, tmp_path):
    """A chain whose credentials are cached is refused once its certificate is revoked:
    the handshake verifies it (the CRL appears, the context is reloaded) before any cache."""
    ca_dir = tmp_path / "certificates"
    shutil.copytree(pki.crl_ca_dir, ca_dir, ignore=shutil.ignore_patterns("*.r0"))
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=ca_dir,
                  backend=backend, check_crls="auto", extra="ContextLifeTime = 0")
    server = echo_server("dips", cfg)
    client = tls_cfg(registry_cfg, cert=pki.revoked_cert, key=pki.revoked_key,
                     ca_dir=pki.crl_ca_dir, backend=backend)
    ok, error = roundtrip(server.port, client, use_certificates=True)
    outcome = server.outcome()
    assert ok and outcome.ok, (error, outcome.error)  # no CRL yet: accepted, dict cached
    leaf = _ders(pki.revoked_cert)[0]
    assert any(key[1] == leaf for key in tlsconfig._CREDENTIALS[cfg])
    shutil.copy(pki.crl_file, ca_dir / pki.crl_file.name)
    ok, error = roundtrip(server.port, client, use_certificates=True)
    outcome = server.outcome()
    assert not ok and not outcome.ok
    assert "certificate revoked" in outcome.error
