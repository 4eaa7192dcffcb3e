"""``seproxy pki`` and ``seproxy proxy-init`` run as real subprocesses, checked with
X509Chain and with ``openssl verify -allow_proxy_certs``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from seproxy.security import pki as devpki
from seproxy.security.x509 import X509Chain, verify_with_ca_directory


def run(*args: str | Path, env_extra: dict[str, str] | None = None, stdin: str | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m seproxy ARGS`` with no X509_* variables and an empty HOME (no ~/.seproxy)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("X509_USER_PROXY", "GRID_PROXY_FILE", "X509_USER_CERT", "X509_USER_KEY")}
    env["HOME"] = tempfile.mkdtemp(prefix="seproxy-cli-home-")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "seproxy", *map(str, args)], env=env,
                          input=stdin, capture_output=True, text=True, timeout=120, cwd=cwd)


def openssl_verify(ca_dir: Path, pem: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "verify", "-allow_proxy_certs", "-CApath", str(ca_dir),
                           "-untrusted", str(pem), str(pem)], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def gs(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "gs"
    result = run("pki", "init", "--dir", directory, "--host", "localhost",
                 "--host", "se.example.org", "--user", "testuser", "--user", "alice")
    assert result.returncode == 0, result.stderr
    assert f"Grid-Security={directory.resolve()}" in result.stdout
    return directory


@pytest.fixture(scope="module")
def registry_file(gs, registry_cfg) -> Path:
    path = gs.parent / "registry.cfg"
    path.write_text(registry_cfg)
    return path


def user_args(gs: Path, name: str = "testuser") -> list[str | Path]:
    base = gs / "users" / name
    return ["--cert", base / "usercert.pem", "--key", base / "userkey.pem"]


def test_pki_init_layout(gs):
    pki = devpki.DevPKI(gs)
    assert len(list(pki.ca_dir.glob("*.0"))) == 1
    host = X509Chain.from_file(pki.host_cert)
    assert host.subject_dn == "/C=ch/O=DIRAC/OU=DIRAC Test/CN=localhost"
    assert openssl_verify(pki.ca_dir, pki.host_cert).returncode == 0
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in",
                          str(pki.host_cert)], capture_output=True, text=True).stdout
    for name in ("DNS:localhost", "DNS:se.example.org", "IP Address:127.0.0.1",
                 "IP Address:0:0:0:0:0:0:0:1"):
        assert name in san
    alice = X509Chain.from_file(gs / "users/alice/usercert.pem")
    assert alice.subject_dn == "/C=ch/O=DIRAC/OU=DIRAC Test/CN=alice"
    assert stat.S_IMODE((gs / "users/alice/userkey.pem").stat().st_mode) == 0o600


def test_pki_host_and_user_subcommands(tmp_path, gs):
    import shutil
    work = tmp_path / "gs"
    shutil.copytree(gs, work)
    result = run("pki", "host", "--dir", work, "node1.example.org", "10.1.2.3")
    assert result.returncode == 0, result.stderr
    host = X509Chain.from_file(work / "hostcert.pem")
    assert host.subject_dn.endswith("/CN=node1.example.org")
    result = run("pki", "user", "--dir", work, "bob", "--dn", "/C=ch/O=Else/CN=Bob B")
    assert result.returncode == 0, result.stderr
    assert X509Chain.from_file(work / "users/bob/usercert.pem").subject_dn == "/C=ch/O=Else/CN=Bob B"
    for cert in (work / "hostcert.pem", work / "users/bob/usercert.pem"):
        assert openssl_verify(work / "certificates", cert).returncode == 0
    missing = run("pki", "user", "--dir", tmp_path / "nothing", "carol")
    assert missing.returncode == 2 and "seproxy pki init" in missing.stderr


def test_proxy_init_out(tmp_path, gs):
    out = tmp_path / "proxy.pem"
    result = run("proxy-init", *user_args(gs), "--group", "dirac_user", "--limited",
                 "--valid", "01:30", "--out", out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    chain = X509Chain.from_file(out)
    assert chain.is_proxy and chain.is_limited_proxy and chain.dirac_group == "dirac_user"
    assert chain.identity_dn == "/C=ch/O=DIRAC/OU=DIRAC Test/CN=testuser"
    assert 5400 - 600 < chain.seconds_left <= 5400
    lifetime = chain.leaf.not_valid_after_utc - chain.leaf.not_valid_before_utc
    assert lifetime.total_seconds() == 5400 + 900
    verify_with_ca_directory(chain, gs / "certificates")
    result = openssl_verify(gs / "certificates", out)
    assert result.returncode == 0, result.stdout + result.stderr


def test_proxy_init_default_location_and_env(tmp_path, gs):
    target = tmp_path / "envproxy.pem"
    result = run("proxy-init", *user_args(gs), "-g", "dirac_admin",
                 env_extra={"X509_USER_PROXY": str(target)})
    assert result.returncode == 0, result.stderr
    chain = X509Chain.from_file(target)
    assert chain.dirac_group == "dirac_admin" and not chain.is_limited_proxy
    assert 86400 - 600 < chain.seconds_left <= 86400
    # User certificate and key from $X509_USER_CERT / $X509_USER_KEY; $GRID_PROXY_FILE wins.
    grid = tmp_path / "grid.pem"
    base = gs / "users" / "alice"
    result = run("proxy-init", "-g", "x", env_extra={
        "X509_USER_CERT": str(base / "usercert.pem"), "X509_USER_KEY": str(base / "userkey.pem"),
        "GRID_PROXY_FILE": str(grid), "X509_USER_PROXY": str(target)})
    assert result.returncode == 0, result.stderr
    assert X509Chain.from_file(grid).identity_dn.endswith("/CN=alice")
    assert X509Chain.from_file(target).dirac_group == "dirac_admin"  # untouched


def test_proxy_init_checks_group_with_registry(tmp_path, gs, registry_file):
    out = tmp_path / "p.pem"
    bad = run("-c", registry_file, "proxy-init", *user_args(gs), "-g", "nosuchgroup",
              "--out", out)
    assert bad.returncode == 2
    assert "ERROR testuser is not a member of group nosuchgroup" in bad.stderr
    assert not out.exists()
    good = run("-c", registry_file, "proxy-init", *user_args(gs), "--out", out)
    assert good.returncode == 0, good.stderr
    assert X509Chain.from_file(out).dirac_group == "dirac_user"  # the Registry default
    # A dev.cfg in the data directory (merged over the development site) is read the same way.
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.cfg").write_text(registry_file.read_text())
    bad = run("proxy-init", "--data-dir", data, *user_args(gs), "-g", "nosuchgroup", "--out", out)
    assert bad.returncode == 2 and "not a member of group nosuchgroup" in bad.stderr


def test_pki_init_defaults_to_the_data_dir(tmp_path):
    result = run("pki", "init", "--data-dir", tmp_path, "--host", "localhost")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "pki" / "hostcert.pem").is_file()
    assert (tmp_path / "pki" / "users" / "testuser" / "usercert.pem").is_file()
    configured = run("pki", "init", "--data-dir", tmp_path, "--host", "localhost",
                     "-o", f"/DIRAC/Security/Grid-Security={tmp_path / 'gs'}")
    assert configured.returncode == 0, configured.stderr
    assert (tmp_path / "gs" / "certificates").is_dir()


def test_proxy_init_encrypted_key(tmp_path, gs):
    key = devpki.load_key(gs / "users/testuser/userkey.pem")
    encrypted = tmp_path / "userkey.pem"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret pass")))
    args = ["proxy-init", "--cert", gs / "users/testuser/usercert.pem", "--key", encrypted,
            "-g", "dirac_user", "--pwstdin", "--out", tmp_path / "p.pem"]
    wrong = run(*args, stdin="nope\n")
    assert wrong.returncode == 2 and "wrong pass phrase" in wrong.stderr
    good = run(*args, stdin="s3cret pass\n")
    assert good.returncode == 0, good.stderr
    assert X509Chain.from_file(tmp_path / "p.pem").private_key is not None


@pytest.mark.parametrize("args, message", [
    (["--valid", "25"], "invalid validity '25'"),
    (["--valid", "1:75"], "invalid validity"),
    (["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"], "cannot read"),
    (["--cert", "/nonexistent/c.pem"], "--cert and --key go together"),
])
def test_proxy_init_errors(tmp_path, args, message):
    result = run("proxy-init", "--out", tmp_path / "p.pem", *args,
                 env_extra={"HOME": str(tmp_path)})
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "p.pem").exists()


def test_proxy_init_without_user_credentials(tmp_path):
    result = run("proxy-init", "--out", tmp_path / "p.pem", env_extra={"HOME": str(tmp_path)})
    assert result.returncode == 2 and "X509_USER_CERT" in result.stderr


def test_proxy_info(pki):
    import json
    proxy = pki.proxy(group="dirac_admin", limited=True)
    shown = run("proxy-info", "--json", "--verify", "-o",
                f"/DIRAC/Security/CALocation={pki.ca_dir}", env_extra={"X509_USER_PROXY": str(proxy)})
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["path"] == str(proxy) and info["identity"] == pki.user_dn
    assert (info["group"], info["isLimitedProxy"]) == ("dirac_admin", True)
    assert info["verified against"] == str(pki.ca_dir)
    text = run("proxy-info", "--file", proxy)
    assert text.returncode == 0 and "dirac_admin" in text.stdout
    assert run("proxy-info", "--file", pki.expired_proxy).returncode == 1
    foreign = run("proxy-info", "--file", proxy, "--verify", "-o",
                  f"/DIRAC/Security/CALocation={pki.other_ca_dir}")
    assert foreign.returncode == 2 and "unable to get a trusted issuer" in foreign.stderr
    legacy = run("proxy-info", "--file", pki.legacy_proxy)
    assert legacy.returncode == 2 and "legacy" in legacy.stderr


def test_proxy_info_finds_the_proxy_the_client_commands_use(pki, tmp_path):
    home = tmp_path / "home"
    (home / ".seproxy").mkdir(parents=True)
    none = run("proxy-info", env_extra={"HOME": str(home)})
    assert none.returncode == 2 and none.stderr.startswith("ERROR no proxy found (")
    assert "--file FILE" in none.stderr and "proxyLocation" not in none.stderr
    own = home / ".seproxy" / "proxy.pem"  # what `seproxy serve` makes on the development site
    own.write_bytes(pki.proxy().read_bytes())
    shown = run("proxy-info", "--json", env_extra={"HOME": str(home)})
    assert shown.returncode == 0, shown.stderr
    import json
    assert json.loads(shown.stdout)["path"] == str(own)
