"""The client commands with the field's habits, against a running ``seproxy serve``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import pytest

from tests.cli.conftest import client_env


def adler(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def test_put_dirac_order_adler32_and_force(dev_site, tmp_path):
    data = os.urandom(300_000)
    (tmp_path / "a.bin").write_bytes(data)
    done = dev_site.run("put", "LFN:/dirac/user/c/a.bin", str(tmp_path / "a.bin"), "SE-LOCAL")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"/dirac/user/c/a.bin stored on SE-LOCAL (300000 bytes, adler32 "
                           f"{adler(data)}, matches the storage)\n")
    assert (dev_site.data / "storage/dirac/user/c/a.bin").read_bytes() == data
    again = dev_site.run("put", "/dirac/user/c/a.bin", str(tmp_path / "a.bin"), "SE-LOCAL")
    assert again.returncode == 2
    assert again.stderr == "ERROR /dirac/user/c/a.bin already exists on SE-LOCAL: use -f to overwrite it\n"
    (tmp_path / "a.bin").write_bytes(b"new")
    forced = dev_site.run("put", "-f", "/dirac/user/c/a.bin", str(tmp_path / "a.bin"), "SE-LOCAL",
                          "--json")
    assert forced.returncode == 0
    assert json.loads(forced.stdout) == [{"LFN": "/dirac/user/c/a.bin", "SE": "SE-LOCAL", "Size": 3,
                                          "Adler32": adler(b"new"), "StorageAdler32": adler(b"new")}]


def test_put_old_order_refused_with_hint(dev_site, tmp_path):
    local = tmp_path / "old.txt"
    local.write_text("x")
    done = dev_site.run("put", str(local), "/dirac/user/c/old.txt", "SE-LOCAL")
    assert done.returncode == 2
    assert done.stderr == (f"ERROR arguments in the old order? seproxy put takes LFN LOCAL SE, as "
                           f"dirac-dms-add-file: seproxy put /dirac/user/c/old.txt {local} SE-LOCAL\n")
    assert not (dev_site.data / "storage/dirac/user/c/old.txt").exists()


def test_stdin_stdout_several_lfns_dir_and_list(dev_site, tmp_path):
    done = dev_site.run("put", "/dirac/user/c/in1.txt", "-", "SE-LOCAL", input=b"from stdin\n",
                        text=False)
    assert done.returncode == 0, done.stderr
    assert b"(11 bytes, adler32 " + adler(b"from stdin\n").encode() in done.stdout
    listing = tmp_path / "list"
    listing.write_text(f"/dirac/user/c/in2.txt {tmp_path / 'list'} SE-LOCAL\n# comment\n")
    assert dev_site.run("put", "--file", str(listing)).returncode == 0
    out = dev_site.run("get", "/dirac/user/c/in1.txt", "SE-LOCAL", "-", text=False)
    assert out.returncode == 0 and out.stdout == b"from stdin\n"
    assert b"-> (stdout) (11 bytes" in out.stderr
    target = tmp_path / "down"
    target.mkdir()
    got = dev_site.run("get", "/dirac/user/c/in1.txt", "LFN:/dirac/user/c/in2.txt", "SE-LOCAL",
                       "-D", str(target))
    assert got.returncode == 0, got.stderr
    assert (target / "in1.txt").read_bytes() == b"from stdin\n"
    assert (target / "in2.txt").read_text() == listing.read_text()
    refused = dev_site.run("get", "/dirac/user/c/in1.txt", "SE-LOCAL", "-D", str(target))
    assert refused.returncode == 2
    assert refused.stderr == f"ERROR {target / 'in1.txt'} exists: use -f to overwrite it\n"
    lfns = tmp_path / "lfns"
    lfns.write_text("/dirac/user/c/in1.txt\n/dirac/user/c/in2.txt\n")
    again = dev_site.run("get", "-f", "--file", str(lfns), "SE-LOCAL", "-D", str(target), "--json")
    assert again.returncode == 0
    assert [r["Path"] for r in json.loads(again.stdout)] == [str(target / "in1.txt"),
                                                             str(target / "in2.txt")]


def test_ls_stat_mkdir_rm(dev_site, tmp_path):
    (tmp_path / "f.txt").write_text("ls me\n")
    assert dev_site.run("mkdir", "/dirac/user/d/sub", "SE-LOCAL").returncode == 0
    assert dev_site.run("put", "/dirac/user/d/sub/f.txt", str(tmp_path / "f.txt"), "SE-LOCAL").returncode == 0
    assert dev_site.run("put", "/dirac/user/d/g.txt", str(tmp_path / "f.txt"), "SE-LOCAL").returncode == 0
    short = dev_site.run("ls", "/dirac/user/d", "SE-LOCAL")
    assert short.stdout == "sub/\ng.txt\n"
    long = dev_site.run("ls", "-l", "/dirac/user/d", "SE-LOCAL")
    assert long.stdout.splitlines()[1].split()[1] == "6" and adler(b"ls me\n") in long.stdout
    recursive = dev_site.run("ls", "-r", "/dirac/user/d", "SE-LOCAL")
    assert "/dirac/user/d/sub/f.txt" in recursive.stdout.splitlines()
    as_json = json.loads(dev_site.run("ls", "/dirac/user/d", "SE-LOCAL", "--json").stdout)
    assert set(as_json["/dirac/user/d"]["Files"]) == {"/dirac/user/d/g.txt"}
    stat = json.loads(dev_site.run("stat", "/dirac/user/d/g.txt", "/dirac/user/d", "SE-LOCAL",
                                   "--json").stdout)
    assert stat["/dirac/user/d/g.txt"]["Size"] == 6 and stat["/dirac/user/d"]["Directory"] is True
    assert dev_site.run("rm", "/dirac/user/d/g.txt", "SE-LOCAL").returncode == 0
    assert not (dev_site.data / "storage/dirac/user/d/g.txt").exists()
    assert dev_site.run("rm", "-r", "/dirac/user/d", "SE-LOCAL").returncode == 0
    assert not (dev_site.data / "storage/dirac/user/d").exists()


def test_retries_and_timeout_on_a_dead_service(dev_site, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    done = dev_site.run("put", "-d", "/dirac/user/r.txt", str(tmp_path / "f.txt"), "SE-LOCAL",
                        "--url", "dips://127.0.0.1:9/DataManagement/StorageElementProxy",
                        "--data-dir", str(dev_site.data), "--retries", "1", "--timeout", "5",
                        client=False)
    assert done.returncode == 2 and "retrying (1/1)" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("ERROR exists: ")
    assert "timeout 5.0 s" in done.stderr


def test_json_on_every_command(dev_site):
    from seproxy.cli import build_parser
    from seproxy.cli.reference import _subcommands

    for name, command in _subcommands(build_parser(), "seproxy"):
        if name in ("seproxy serve", "seproxy pki"):  # a running service; a command group
            continue
        assert any("--json" in a.option_strings for a in command._actions), name
    who = json.loads(dev_site.run("whoami", dev_site.url, "--data-dir", str(dev_site.data), "--json",
                                  client=False).stdout)
    assert who["username"] == "testuser"


def test_version_and_completion(tmp_path):
    from seproxy import __version__
    from seproxy.rpc.version import DIRAC_VERSION

    done = subprocess.run([sys.executable, "-m", "seproxy", "--version"],
                                        capture_output=True, text=True, env=client_env())
    assert done.stdout == f"seproxy {__version__} (speaks DISET as DIRAC {DIRAC_VERSION})\n"
    out = tmp_path / "completions"
    line = "seproxy l"
    env = client_env({"_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
                      "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"})
    subprocess.run([sys.executable, "-m", "seproxy"], env=env, timeout=60,
                                 capture_output=True)
    assert [c.strip() for c in out.read_text().split("\n")] == ["ls"]


@pytest.mark.parametrize("argv", [["get", "/dirac/user/x"], ["ls", "SE-LOCAL", "/dirac"],
                                  ["put", "/dirac/user/x", "y"]])
def test_usage_errors_are_one_line(dev_site, argv):
    done = dev_site.run(*argv)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("ERROR ")


def test_se_unknown_to_this_client_is_asked_of_the_proxy(dev_site, tmp_path):
    """A client configuration without /Resources/StorageElements: the proxy decides."""
    client_cfg = tmp_path / "client.cfg"
    client_cfg.write_text("DIRAC\n{\n  Security\n  {\n    CALocation = "
                          f"{dev_site.data / 'pki' / 'certificates'}\n  }}\n}}\n")
    (tmp_path / "f.txt").write_text("asked\n")
    common = ["-c", str(client_cfg), "--url", dev_site.url, "--proxy", str(dev_site.data / "proxy.pem")]
    done = dev_site.run("put", "/dirac/user/c/asked.txt", str(tmp_path / "f.txt"), "SE-LOCAL", *common,
                        client=False)
    assert done.returncode == 0, done.stderr
    refused = dev_site.run("put", "/dirac/user/c/asked.txt", str(tmp_path / "f.txt"), "NO-SUCH-SE",
                           *common, client=False)
    assert refused.returncode == 2
    assert refused.stderr == "ERROR unknown storage element 'NO-SUCH-SE'\n"
