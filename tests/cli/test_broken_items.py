"""The broken items of issue 16, each as it was met by a new user (one test per item).

Item 4 (the production banner) belongs to the configuration schema work; item 6's
server side (the staged-copy purger) is tested in tests/handler/test_instance.py.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import sys
import urllib.request

from seproxy.security import pki as devpki
from tests.cli.conftest import client_env, run_tty
from tests.fixtures.services import SEPROXY_SECTION

TRACEBACK = "Traceback (most recent call last)"


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert TRACEBACK not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR "), done.stderr
    return lines[0]


def test_1_no_progress_library_no_crash(dev_site, tmp_path):
    """put/get in a terminal with tqdm absent: no bar, no ModuleNotFoundError, exit 0."""
    (tmp_path / "in.txt").write_text("no tqdm\n")
    hide = ("import sys; sys.modules['tqdm'] = None; from seproxy.cli import main; "
            "sys.exit(main())")
    code, out = run_tty([sys.executable, "-c", hide, "put", "/dirac/user/b1.txt", "in.txt",
                         "SE-LOCAL", *dev_site.client_args], cwd=tmp_path)
    assert code == 0 and TRACEBACK not in out and "stored on SE-LOCAL" in out, out
    code, out = run_tty([sys.executable, "-c", hide, "get", "/dirac/user/b1.txt", "SE-LOCAL",
                         "out.txt", *dev_site.client_args], cwd=tmp_path)
    assert code == 0 and (tmp_path / "out.txt").read_text() == "no tqdm\n", out


def test_2_second_instance_refused_first_keeps_its_data(dev_site, tmp_path):
    (tmp_path / "h.txt").write_text("http key\n")
    assert dev_site.run("put", "/dirac/user/b2.txt", str(tmp_path / "h.txt"), "SE-LOCAL").returncode == 0
    url = dev_site.run("http-url", "/dirac/user/b2.txt").stdout.strip()
    assert url.startswith("http://")
    partials = [p for p in (dev_site.data / "cache" / "tmp").iterdir() if p.is_dir()]
    partial = partials[0] / "an-upload.part"
    partial.write_bytes(b"half an upload")
    second = subprocess.run(
        [sys.executable, "-m", "seproxy", "serve", "--data-dir", str(dev_site.data),
         "-o", f"{SEPROXY_SECTION}/Port=0", "-o", f"{SEPROXY_SECTION}/HttpPort=0"],
        capture_output=True, text=True, timeout=120, env=client_env())
    line = one_error_line(second)
    assert "already running" in line and f"pid {dev_site.proc.pid}" in line
    assert dev_site.url in line
    assert partial.read_bytes() == b"half an upload"
    with urllib.request.urlopen(url, timeout=30) as answer:  # the key made before still works
        assert answer.status == 200 and answer.read() == b"http key\n"
    partial.unlink()


def test_3_no_user_proxy_never_the_host(dev_site, tmp_path):
    client = tmp_path / "client"
    client.mkdir()
    shutil.copytree(dev_site.data / "pki", client / "pki")  # the dev site's CA and Registry, no proxy
    (tmp_path / "h.txt").write_text("host?\n")
    args = ["--url", dev_site.url, "--data-dir", str(client)]
    for argv in (["whoami", dev_site.url, "--data-dir", str(client)],
                 ["put", "/dirac/user/b3.txt", str(tmp_path / "h.txt"), "SE-LOCAL", *args]):
        done = dev_site.run(*argv, client=False)
        line = one_error_line(done)
        assert "no user proxy found" in line and "seproxy proxy-init" in line
    assert not (dev_site.data / "storage" / "dirac" / "user" / "b3.txt").exists()
    # on purpose, an operator can still act as the host
    done = dev_site.run("whoami", dev_site.url, "--data-dir", str(client), "--host-cert", client=False)
    assert done.returncode == 0 and "TrustedHost" in done.stdout


def test_5_get_into_missing_directory_and_debug(dev_site, tmp_path):
    (tmp_path / "h.txt").write_text("five\n")
    assert dev_site.run("put", "/dirac/user/b5.txt", str(tmp_path / "h.txt"), "SE-LOCAL").returncode == 0
    done = dev_site.run("get", "/dirac/user/b5.txt", "SE-LOCAL", str(tmp_path / "no" / "dir" / "b5.txt"))
    assert one_error_line(done) == (f"ERROR cannot write {tmp_path / 'no' / 'dir' / 'b5.txt'}: "
                                    f"directory {tmp_path / 'no' / 'dir'} does not exist")
    done = dev_site.run("get", "-d", "/dirac/user/b5.txt", "SE-LOCAL", str(tmp_path / "b5.txt"))
    assert done.returncode == 0, done.stderr
    assert "DEBUG seproxy.cli: presenting proxy" in done.stderr
    assert "DEBUG seproxy.cli: prepareFile: OK in" in done.stderr


def test_7_expired_proxy_says_when_and_how_to_renew(dev_site, tmp_path):
    dev = devpki.DevPKI(dev_site.data / "pki")
    cert, key = dev.user_paths("testuser")
    chain = [devpki.load_cert(cert)]
    now = devpki.utcnow()
    ended = now - datetime.timedelta(hours=2)
    proxy, proxy_key = devpki.create_proxy_certificate(
        chain, devpki.load_key(key), group="dirac_user",
        not_before=now - datetime.timedelta(hours=3), not_after=ended)
    expired = devpki.write_private(tmp_path / "expired.pem", devpki.proxy_pem(proxy, proxy_key, chain))
    (tmp_path / "h.txt").write_text("seven\n")
    done = dev_site.run("put", "/dirac/user/b7.txt", str(tmp_path / "h.txt"), "SE-LOCAL",
                        "--proxy", str(expired))
    line = one_error_line(done)
    assert f"expired at {ended:%Y-%m-%d %H:%M}" in line and "`seproxy proxy-init`" in line
    info = dev_site.run("proxy-info", "--file", str(expired), client=False)
    assert info.returncode == 1
    assert "secondsLeft          : 00:00:00 (expired at " in info.stdout


def test_8_unknown_se_missing_lfn_dotdot(dev_site, tmp_path):
    (tmp_path / "h.txt").write_text("eight\n")
    local = str(tmp_path / "h.txt")
    line = one_error_line(dev_site.run("put", "/dirac/user/b8.txt", local, "NO-SUCH-SE"))
    assert line == "ERROR unknown storage element 'NO-SUCH-SE' (configured: SE-LOCAL)"
    # known to this client's configuration only: the proxy's refusal in the same words
    line = one_error_line(dev_site.run("put", "/dirac/user/b8.txt", local, "ONLY-HERE", "-o",
                                       "/Resources/StorageElements/ONLY-HERE/BackendType=File"))
    assert line.startswith("ERROR ") and "unknown storage element 'ONLY-HERE'" in line
    assert "StorageFactory" not in line
    line = one_error_line(dev_site.run("get", "/dirac/user/nothing-here.txt", "SE-LOCAL",
                                       cwd=tmp_path))
    assert line == "ERROR /dirac/user/nothing-here.txt: no such file or directory"
    assert str(dev_site.data) not in line
    # refused before any byte is sent: the URL points nowhere, the LFN error comes first
    done = dev_site.run("put", "/dirac/../etc/b8.txt", local, "SE-LOCAL", "--url",
                        "dips://127.0.0.1:9/DataManagement/StorageElementProxy",
                        "--data-dir", str(dev_site.data), client=False)
    assert one_error_line(done) == ("ERROR Invalid LFN (/dirac/../etc/b8.txt): '.' and '..' "
                                    "components are not allowed")
