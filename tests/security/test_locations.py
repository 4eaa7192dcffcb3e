"""Credential and CA look-ups in DIRAC's order; the process environment is never written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seproxy.config import Config
from seproxy.errors import AuthError, ConfigError
from seproxy.security import locations


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No /etc/grid-security of the machine; the real environment must stay untouched."""
    monkeypatch.setattr(locations, "SYSTEM_GRID_SECURITY", tmp_path / "etc-grid-security")
    def snapshot():
        return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    before = snapshot()
    yield
    assert snapshot() == before


def cfg(**options: str) -> Config:
    body = "".join(f"    {k} = {v}\n" for k, v in options.items())
    return Config.from_text(f"DIRAC\n{{\n  Security\n  {{\n{body}  }}\n}}\n")


def mkdirs(*paths: Path) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def test_ca_directory_order(tmp_path):
    root = tmp_path / "root"
    env = {"DIRAC": str(root)}
    gs, ca_location, x509_dir = tmp_path / "gs", tmp_path / "calocation", tmp_path / "x509"
    with pytest.raises(ConfigError, match="no CA directory"):
        locations.ca_directory(cfg(), env)
    system = locations.SYSTEM_GRID_SECURITY / "certificates"
    mkdirs(system)
    assert locations.ca_directory(None, env) == system
    mkdirs(root / "etc/grid-security/certificates")
    assert locations.ca_directory(None, env) == root / "etc/grid-security/certificates"
    # $X509_CERT_DIR is taken as is, even when it does not exist (as DIRAC does).
    env["X509_CERT_DIR"] = str(x509_dir)
    assert locations.ca_directory(None, env) == x509_dir
    full = cfg(**{"Grid-Security": str(gs), "CALocation": str(ca_location)})
    assert locations.ca_directory(full, env) == x509_dir  # neither configured dir exists
    mkdirs(ca_location)
    assert locations.ca_directory(full, env) == ca_location
    mkdirs(gs / "certificates")
    assert locations.ca_directory(full, env) == gs / "certificates"


def test_voms_directory(tmp_path):
    env = {"X509_VOMS_DIR": str(tmp_path / "vomsenv")}
    assert locations.voms_directory(None, env) is None
    mkdirs(tmp_path / "vomsenv")
    assert locations.voms_directory(None, env) == tmp_path / "vomsenv"
    mkdirs(tmp_path / "gs" / "vomsdir")
    assert locations.voms_directory(cfg(**{"Grid-Security": str(tmp_path / "gs")}), env) == \
        tmp_path / "gs" / "vomsdir"


def test_host_credentials_order(tmp_path):
    root, gs = tmp_path / "root", tmp_path / "gs"
    env = {"DIRAC": str(root)}
    with pytest.raises(ConfigError, match="host cert and key not found"):
        locations.host_credentials(None, env)
    touch(root / "etc/grid-security/servicecert.pem", root / "etc/grid-security/diracKey.pem",
          root / "etc/grid-security/hostkey.pem")
    cert, key = locations.host_credentials(None, env)
    assert (cert.name, key.name) == ("servicecert.pem", "hostkey.pem")
    touch(gs / "servicecert.pem", gs / "hostcert.pem")
    with_gs = cfg(**{"Grid-Security": str(gs)})
    cert, key = locations.host_credentials(with_gs, env)
    assert cert == (gs / "hostcert.pem").resolve()  # prefix order beats directory order
    assert key == (root / "etc/grid-security/hostkey.pem").resolve()
    configured = cfg(**{"Grid-Security": str(gs), "CertFile": "/c.pem", "KeyFile": "/k.pem"})
    assert locations.host_credentials(configured, env) == (Path("/c.pem"), Path("/k.pem"))
    env["DIRAC_X509_HOST_CERT"] = str(tmp_path / "missing.pem")  # must exist to count
    env["DIRAC_X509_HOST_KEY"] = str(gs / "servicecert.pem")
    assert locations.host_credentials(configured, env) == (Path("/c.pem"), gs / "servicecert.pem")


def test_proxy_location(tmp_path):
    uid_proxy = Path(f"/tmp/x509up_u{os.getuid()}")
    env: dict[str, str] = {}
    if not uid_proxy.exists():
        with pytest.raises(AuthError, match="no proxy found"):
            locations.proxy_location(None, env)
    assert locations.proxy_location("/some/where.pem", env) == Path("/some/where.pem")
    env["X509_USER_PROXY"] = str(tmp_path / "user.pem")
    env["GRID_PROXY_FILE"] = str(tmp_path / "grid.pem")
    touch(tmp_path / "user.pem")
    assert locations.proxy_location(None, env) == tmp_path / "user.pem"
    touch(tmp_path / "grid.pem")
    assert locations.proxy_location(None, env) == tmp_path / "grid.pem"


def test_default_proxy_path(tmp_path):
    assert locations.default_proxy_path({}) == Path(f"/tmp/x509up_u{os.getuid()}")
    env = {"X509_USER_PROXY": str(tmp_path / "p.pem")}
    assert locations.default_proxy_path(env) == tmp_path / "p.pem"
    env["GRID_PROXY_FILE"] = str(tmp_path / "g.pem")
    assert locations.default_proxy_path(env) == tmp_path / "g.pem"


def test_user_credentials(tmp_path):
    env = {"HOME": str(tmp_path)}
    with pytest.raises(AuthError, match="X509_USER_CERT"):
        locations.user_credentials(env)
    touch(tmp_path / ".globus/usercert.pem", tmp_path / ".globus/userkey.pem")
    assert locations.user_credentials(env) == (tmp_path / ".globus/usercert.pem",
                                               tmp_path / ".globus/userkey.pem")
    touch(tmp_path / "c.pem")
    env["X509_USER_CERT"] = str(tmp_path / "c.pem")
    assert locations.user_credentials(env)[0] == tmp_path / "c.pem"


def test_security_package_never_writes_environ():
    source = "".join(p.read_text() for p in Path(locations.__file__).parent.glob("*.py"))
    for forbidden in ("os.environ[", "os.environ.update", "os.environ.setdefault", "putenv",
                      "os.environ.pop"):
        assert forbidden not in source
