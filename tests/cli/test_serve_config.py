"""``seproxy serve -c site.cfg``: bad values stop it with one line (exit 2); a site
configuration gets nothing of the development site (no SE-LOCAL, no dev PKI, no dev
commands in the banner); unknown service options are warnings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seproxy.cli import build_parser
from seproxy.cli.common import load_config
from tests.config.test_schema import site
from tests.conftest import REPO_ROOT, wait_for
from tests.handler.test_layouts import site_text

SEP = "/Systems/DataManagement/Services/StorageElementProxy"
SEP80 = "/Systems/DataManagement/Prod/Services/StorageElementProxy"


def serve(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seproxy", "serve", "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False)


@pytest.mark.parametrize(("body", "option", "value", "reason"), [
    ("Port = abc", "Port", "abc", "expected an integer"),
    ("Port = 99999", "Port", "99999", "expected 0 to 65535"),
    ("HttpAccess = maybe", "HttpAccess", "maybe", "expected yes or no"),
    ("MaxFileSize = -1G", "MaxFileSize", "-1G", "not a size >= 0"),
    ("MinFreeSpace = lots", "MinFreeSpace", "lots", "not a size (use bytes or K, M, G, T: e.g. 500M, 10G)"),
    ("HttpPort = 70000", "HttpPort", "70000", "expected 0 to 65535"),
    ("CredentialSource = root", "CredentialSource", "root", "expected one of host, proxydir, delegation, ProxyManager"),
    ("MaxThreads = 0", "MaxThreads", "0", "expected 1 to 10000"),
])
@pytest.mark.parametrize("layout80", [False, True], ids=["9", "8.0"])
def test_bad_value_one_line_exit_2(tmp_path, body, option, value, reason, layout80):
    path = site(tmp_path, body, layout80=layout80)
    done = serve(tmp_path, "-c", str(path))
    assert done.returncode == 2
    section = SEP80 if layout80 else SEP
    assert done.stderr == f"ERROR invalid value {value!r} for {section}/{option} in {path}: {reason}\n"
    assert done.stdout == ""
    assert not (tmp_path / "data").exists()  # stopped before anything was made


def test_bad_override_names_the_override(tmp_path):
    done = serve(tmp_path, "-o", f"{SEP}/Port=abc")
    assert done.returncode == 2
    assert done.stderr == f"ERROR invalid value 'abc' for {SEP}/Port in override -o {SEP}/Port: expected an integer\n"


def test_malformed_file_names_the_line(tmp_path):
    path = tmp_path / "junk.cfg"
    path.write_text("# a site\nDIRAC\n{\n  Setup = x\n}\nthis is not a configuration\n")
    done = serve(tmp_path, "-c", str(path))
    assert done.returncode == 2
    assert done.stderr == (f"ERROR Malformed configuration file {path}, line 6: 'this is not a configuration' "
                           "is neither an option (Name = value) nor a section (Name followed by {)\n")


def test_site_configuration_has_nothing_of_the_dev_site(tmp_path, pki):
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.cfg").write_text("Registry\n{\n  Users\n  {\n    devonly\n    {\n      DN = /CN=dev\n    }\n  }\n}\n")
    site = tmp_path / "site.cfg"
    site.write_text(site_text(pki, tmp_path / "cache", tmp_path / "storage", "9").replace("SE-LOCAL", "SE-SITE"))
    args = build_parser().parse_args(["serve", "--data-dir", str(data), "-c", str(site)])
    cfg = load_config(args)
    assert cfg.getSections("/Resources/StorageElements") == ["SE-SITE"]
    assert cfg.getOption("/DIRAC/Security/CertFile") == str(pki.host_cert)
    assert "devonly" not in cfg.getSections("/Registry/Users")  # dev.cfg is the dev site's
    assert "testuser" in cfg.getSections("/Registry/Users")  # the site's own
    dev = load_config(build_parser().parse_args(["serve", "--data-dir", str(data)]))
    assert "SE-LOCAL" in dev.getSections("/Resources/StorageElements")
    assert "devonly" in dev.getSections("/Registry/Users")


@pytest.mark.parametrize("layout", ["9", "8.0"])
def test_production_serve_banner_and_warnings(tmp_path, pki, layout):
    data = tmp_path / "data"
    (tmp_path / "storage").mkdir()
    text = site_text(pki, tmp_path / "cache", tmp_path / "storage", layout).replace("SE-LOCAL", "SE-SITE")
    section = SEP80 if layout == "8.0" else SEP
    site = tmp_path / "site.cfg"
    site.write_text(text.replace("HttpPurgeInterval = 0", "HttpPurgeInterval = 0\nMaxThred = 4", 1))
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "seproxy", "serve", "--data-dir", str(data), "-c", str(site)],
                                stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO_ROOT,
                                env={**os.environ, "X509_USER_PROXY": str(tmp_path / "none")})
    try:
        lines = []
        assert proc.stdout is not None
        while not lines or not lines[-1].startswith("Stop with Ctrl-C"):
            line = proc.stdout.readline()
            assert line, (lines, stderr.read_text())
            lines.append(line.rstrip("\n"))
        banner = "\n".join(lines)
        assert "DISET     dips://127.0.0.1:" in banner
        assert "SE-LOCAL" not in banner and "--proxy" not in banner and "proxy.pem" not in banner
        assert "created" not in banner and not (data / "pki").exists()
        assert "seproxy ping dips://127.0.0.1:" in banner and f"-c {site}" in banner
        wait_for(lambda: "MaxThred" in stderr.read_text(), timeout=10)
        assert f"unknown option {section}/MaxThred (from {site}) ignored" in stderr.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
