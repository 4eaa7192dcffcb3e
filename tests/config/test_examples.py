"""Every example under config/ loads through the schema; the dev site there is the one
``seproxy serve`` reads (package data); the systemd unit and logrotate file are valid."""

from __future__ import annotations

import configparser
import getpass
import os
import shlex
import subprocess

import pytest

from seproxy.cli import build_parser
from seproxy.config import Config, default_config_path, schema
from seproxy.storage.factory import resolve_storage
from tests.conftest import REPO_ROOT

CONFIG = REPO_ROOT / "config"
SITES = {"site.cfg.example": "/Systems/DataManagement/Services/StorageElementProxy",
         "site-dirac8.cfg.example": "/Systems/DataManagement/Production/Services/StorageElementProxy"}
SES = {"file.cfg.example": ("MYSITE-DISK", "File"), "s3.cfg.example": ("MYSITE-S3", "S3"),
       "xroot.cfg.example": ("MYSITE-XROOT", "XROOT"), "dip.cfg.example": ("MYSITE-DIP", "DIP")}


def test_dev_site_copy_is_the_package_data():
    assert (CONFIG / "dev-site.cfg").read_bytes() == default_config_path().read_bytes()


def test_every_example_is_covered():
    examples = {p.relative_to(CONFIG).as_posix() for p in CONFIG.rglob("*.example")}
    covered = set(SITES) | {f"storage-elements/{n}" for n in SES} | \
        {"two-instances/node-a.cfg.example", "two-instances/node-b.cfg.example",
         "join-dirac.cfg.example", "three-instances.cfg.example", "haproxy.cfg.example"}
    assert examples == covered


@pytest.mark.parametrize("site", sorted(SITES))
def test_site_examples_with_every_storage_element(site):
    files = [CONFIG / site, *(CONFIG / "storage-elements" / n for n in sorted(SES))]
    cfg = Config.load(files, use_default=False)
    assert schema.validate(cfg) == []
    section = cfg.service_section(schema.SERVICE_NAME)
    assert section == SITES[site]
    option = schema.STORAGE_ELEMENT_PROXY.value
    assert option(cfg, "Port", section) == 9139 and option(cfg, "BindAddress", section) == ""
    assert option(cfg, "MinFreeSpace", section) == 10 << 30
    assert option(cfg, "HttpAccess", section) is True
    assert cfg.service_urls(schema.SERVICE_NAME) == [
        "dips://seproxy.example.org:9139/DataManagement/StorageElementProxy"]
    assert "SE-LOCAL" not in cfg.getSections("/Resources/StorageElements")
    for name, plugin in SES.values():
        definition = resolve_storage(cfg, name, "myvo")
        assert [d["PluginName"] for d in definition.protocols.values()] == [plugin]
        assert definition.remote_sections  # usable by DIRAC clients at any site


@pytest.mark.parametrize("node", ["a", "b"])
def test_two_instance_examples(node):
    cfg = Config.load([CONFIG / "site.cfg.example", CONFIG / "two-instances" / f"node-{node}.cfg.example"],
                      use_default=False)
    assert schema.validate(cfg) == []
    section = cfg.service_section(schema.SERVICE_NAME)
    option = schema.STORAGE_ELEMENT_PROXY.value
    assert option(cfg, "InstanceName", section) == f"node-{node}"
    assert option(cfg, "HttpURLHost", section) == f"node-{node}.example.org"
    assert option(cfg, "BasePath", section) == "/shared/seproxy/cache"
    assert len(cfg.service_urls(schema.SERVICE_NAME)) == 2


def test_three_instance_example():
    cfg = Config.load([CONFIG / "site.cfg.example", CONFIG / "three-instances.cfg.example"],
                      use_default=False, overrides=[f"{SITES['site.cfg.example']}/InstanceName=node1"])
    assert schema.validate(cfg) == []
    section = cfg.service_section(schema.SERVICE_NAME)
    option = schema.STORAGE_ELEMENT_PROXY.value
    assert option(cfg, "Database", section).startswith("mysql+pymysql://")
    assert option(cfg, "HttpURLHost", section) == "seproxy.example.org"
    assert option(cfg, "HttpURLPort", section) == 9180
    assert option(cfg, "InstanceName", section) == "node1"
    assert cfg.service_urls(schema.SERVICE_NAME) == [
        "dips://seproxy.example.org:9139/DataManagement/StorageElementProxy"]


def test_haproxy_example_is_valid(tmp_path):
    # the load-balancer test runs this file as is; here HAProxy checks it without starting
    env = {**os.environ, "SEPROXY_LB_DIPS": "127.0.0.1:9139", "SEPROXY_LB_HTTP": "127.0.0.1:9180"}
    for index in (1, 2, 3):
        env[f"SEPROXY_NODE{index}_DIPS"] = f"127.0.0.{index + 1}:9139"
        env[f"SEPROXY_NODE{index}_HTTP"] = f"127.0.0.{index + 1}:9180"
    done = subprocess.run(["haproxy", "-c", "-f", str(CONFIG / "haproxy.cfg.example")],
                          capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0 and "valid" in done.stdout + done.stderr, done.stdout + done.stderr


def test_join_dirac_example():
    cfg = Config.load([CONFIG / "join-dirac.cfg.example"], use_default=False)
    assert schema.validate(cfg) == []
    assert len(schema.CONFIGURATION.value(cfg, "Servers", "/DIRAC/Configuration")) == 2
    assert schema.CONFIGURATION.value(cfg, "LocalCopy", "/DIRAC/Configuration").endswith(".cfg")


def test_systemd_unit():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(CONFIG / "seproxy.service")
    command = shlex.split(unit["Service"]["ExecStart"])
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve" and args.sub_cfg_files == ["/etc/seproxy/site.cfg"]
    assert unit["Service"]["RestartPreventExitStatus"] == "2"  # a configuration error: no loop
    log = unit["Service"]["StandardError"].removeprefix("append:")
    assert log in (CONFIG / "seproxy.logrotate").read_text()


def test_systemd_unit_verifies(tmp_path):
    text = (CONFIG / "seproxy.service").read_text().replace("/opt/seproxy/bin/seproxy", "/bin/true")
    (tmp_path / "seproxy.service").write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "seproxy.service")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "seproxy.service" not in done.stderr, done.stderr


def test_logrotate_file_parses(tmp_path):
    me = getpass.getuser()
    text = (CONFIG / "seproxy.logrotate").read_text().replace("su seproxy seproxy", f"su {me} {me}")
    (tmp_path / "seproxy").write_text(text)
    done = subprocess.run(["logrotate", "-d", "-s", str(tmp_path / "state"), str(tmp_path / "seproxy")],
                          capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "error" not in output.lower(), output
    assert "Handling 1 logs" in output
