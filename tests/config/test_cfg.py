"""Config: merging files, overrides, type casting, reload, DIRAC service layouts."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from seproxy.config import Config, default_config_path, get_config, set_config
from seproxy.config.schema import STORAGE_ELEMENT_PROXY
from seproxy.errors import ConfigError

SITE = """
DIRAC
{
  Hostname = se.example.org
}
Systems
{
  DataManagement
  {
    Services
    {
      StorageElementProxy
      {
        Port = 19139
        Flag = Yes
        Off = no
        Ratio = 2.5
        BadInt = twelve
        List = a, b ,, c
        List += d
        Key = x = y
        Hash = abc # not a comment
        Authorization
        {
          Default = authenticated
        }
      }
    }
  }
}
"""


@pytest.fixture
def site_cfg(tmp_path: Path) -> Path:
    path = tmp_path / "site.cfg"
    path.write_text(SITE)
    return path


SEP = "/Systems/DataManagement/Services/StorageElementProxy"


def test_dev_site_is_package_data_and_has_service_section() -> None:
    assert default_config_path().is_file() and default_config_path().name == "dev-site.cfg"
    cfg = Config.load()
    assert cfg.service_section("DataManagement/StorageElementProxy") == SEP
    option = functools.partial(STORAGE_ELEMENT_PROXY.value, cfg, base=SEP)
    assert option("Port") == 9139
    assert option("Protocol") == "dips"
    assert option("HttpAccess") is True  # the dev site's; the schema's default is no
    assert option("HttpPort") == 9180
    assert option("Authorization/Default") == ["authenticated"]
    assert option("Authorization/FileTransfer/Default") == ["authenticated"]
    assert cfg.getOption("/DIRAC/Setup") is None
    assert "SE-LOCAL" in cfg.getSections("/Resources/StorageElements")
    assert cfg.getOption("/Resources/StorageElements/SE-LOCAL/File/Access") == "remote"
    assert cfg.getOption("/Resources/StorageElements/SE-LOCAL/File/PluginName") == "File"
    assert cfg.getValue("/Registry/Groups/dirac_user/Properties", []) == ["NormalUser"]
    assert "CSAdministrator" in cfg.getValue("/Registry/Groups/dirac_admin/Properties", [])
    assert cfg.getValue("/Registry/DefaultGroup", []) == ["dirac_user"]
    assert cfg.isSection("/Registry/VO/dirac")


def test_datadir_placeholder_reads_absent_until_set() -> None:
    cfg = Config.load()
    assert cfg.getOption("/DIRAC/Security/CertFile") is None
    se_path = "/Resources/StorageElements/SE-LOCAL/File/Path"
    assert cfg.getValue(se_path, "/fallback") == "/fallback"
    assert STORAGE_ELEMENT_PROXY.value(cfg, "BasePath", SEP) == ""  # schema default @DATADIR@/cache
    cfg.set_placeholder("DATADIR", "/srv/seproxy")
    assert cfg.getOption("/DIRAC/Security/CertFile") == "/srv/seproxy/pki/hostcert.pem"
    assert cfg.getValue(se_path, "") == "/srv/seproxy/storage"
    assert STORAGE_ELEMENT_PROXY.value(cfg, "BasePath", SEP) == "/srv/seproxy/cache"
    cfg.reload()
    assert cfg.getValue(se_path, "") == "/srv/seproxy/storage"


def test_type_casting(site_cfg: Path) -> None:
    cfg = Config.load([site_cfg])
    assert cfg.getValue(f"{SEP}/Port", 0) == 19139  # site file wins over default
    assert cfg.getValue(f"{SEP}/Port", 0.0) == 19139.0
    assert cfg.getValue(f"{SEP}/Port") == "19139"
    assert cfg.getValue(f"{SEP}/Flag", False) is True
    assert cfg.getValue(f"{SEP}/Off", True) is False
    assert cfg.getValue(f"{SEP}/Ratio", 1.0) == 2.5
    assert cfg.getValue(f"{SEP}/BadInt", 7) == 7  # bad value -> default
    assert cfg.getValue(f"{SEP}/List", []) == ["a", "b", "c", "d"]
    assert cfg.getValue(f"{SEP}/Key", "") == "x = y"
    assert cfg.getValue(f"{SEP}/Hash", "") == "abc # not a comment"
    assert cfg.getValue(f"{SEP}/Missing", 3) == 3
    assert cfg.getValue(f"{SEP}/Missing") is None
    assert cfg.getValue(f"{SEP}/Port", int) == 19139  # a type as default
    for word in ("y", "YES", "True", "1"):
        cfg.setOption("/X/B", word)
        assert cfg.getValue("/X/B", False) is True
    for word in ("n", "no", "0", "off", ""):
        cfg.setOption("/X/B", word)
        assert cfg.getValue("/X/B", True) is False


def test_accessors(site_cfg: Path) -> None:
    cfg = Config.load([site_cfg])
    assert cfg.isSection(SEP) and not cfg.isOption(SEP)
    assert cfg.isOption(f"{SEP}/Port") and not cfg.isSection(f"{SEP}/Port")
    assert "Authorization" in cfg.getSections(SEP)
    opts = cfg.getOptions(SEP)
    # merge keeps first-file order
    assert opts[:4] == ["HttpAccess", "HttpURLHost", "MetricsPort", "Port"] and "Flag" in opts
    assert cfg.getOptionsDict(SEP)["List"] == "a, b ,, c, d"
    assert cfg.getOption("//Systems//DataManagement/Services/StorageElementProxy/Port") == "19139"
    assert cfg.getOptions("/Nope") == [] and cfg.getSections("/Nope") == []
    assert cfg.getOption(f"{SEP}/Port/Deeper") is None


def test_overrides_and_set_option_survive_reload(site_cfg: Path) -> None:
    cfg = Config.load([site_cfg], overrides=[f"{SEP}/Port=1234", "-o /New/Section/Opt = v=w"])
    assert cfg.getValue(f"{SEP}/Port", 0) == 1234
    assert cfg.getOption("/New/Section/Opt") == "v=w"
    cfg.setOption("/Other/List", ["a", "b"])
    assert cfg.getValue("/Other/List", []) == ["a", "b"]
    site_cfg.write_text(SITE.replace("Flag = Yes", "Flag = no"))
    generation = cfg.generation
    cfg.reload()
    assert cfg.generation > generation
    assert cfg.getValue(f"{SEP}/Flag", True) is False  # file re-read
    assert cfg.getValue(f"{SEP}/Port", 0) == 1234
    assert cfg.getValue("/Other/List", []) == ["a", "b"]


def test_merge_file_and_text(tmp_path: Path) -> None:
    cfg = Config.load(use_default=False)
    assert cfg.getSections("/") == []
    extra = tmp_path / "extra.cfg"
    extra.write_text("A\n{\n  B = 1\n}\n")
    cfg.merge_file(extra)
    cfg.merge_text("A\n{\n  C = 2\n}\n")
    assert cfg.getOptionsDict("/A") == {"B": "1", "C": "2"}
    extra.write_text("A\n{\n  B = 5\n}\n")
    cfg.reload()
    assert cfg.getOptionsDict("/A") == {"B": "5", "C": "2"}


@pytest.mark.parametrize("bad", ["/NoValue", "=value", "  =x", "-o"])
def test_bad_override_is_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="Invalid configuration override"):
        Config.load(overrides=[bad])


def test_override_cannot_turn_section_into_option() -> None:
    with pytest.raises(ConfigError, match="is a section"):
        Config.load(overrides=[f"{SEP}=1"])


def test_bad_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read configuration file"):
        Config.load([tmp_path / "missing.cfg"])
    bad = tmp_path / "bad.cfg"
    bad.write_text("A\n{\n  B = 1\n")
    with pytest.raises(ConfigError, match="Malformed configuration file .*bad.cfg"):
        Config.load([bad])
    bad.write_text("}\n")
    with pytest.raises(ConfigError, match="Malformed"):
        Config.load([bad])


LAYOUT_80 = """
DIRAC
{
  Setup = Production
  Setups
  {
    Production
    {
      DataManagement = Prod
    }
  }
}
Systems
{
  DataManagement
  {
    Prod
    {
      Services
      {
        StorageElementProxy
        {
          Port = 9148
        }
      }
      URLs
      {
        StorageElementProxy = dips://a:9148/DataManagement/StorageElementProxy, dips://b:9148/DataManagement/StorageElementProxy
      }
    }
  }
}
"""


def test_dirac_80_layout_found_through_setup() -> None:
    cfg = Config.from_text(LAYOUT_80, use_default=True)
    section = cfg.service_section("DataManagement/StorageElementProxy")
    assert section == "/Systems/DataManagement/Prod/Services/StorageElementProxy"
    assert cfg.getValue(f"{section}/Port", 0) == 9148
    assert cfg.service_urls("DataManagement/StorageElementProxy") == [
        "dips://a:9148/DataManagement/StorageElementProxy",
        "dips://b:9148/DataManagement/StorageElementProxy",
    ]
    cfg.setOption("/DIRAC/NoSetup", "True")
    assert cfg.service_section("DataManagement/StorageElementProxy") == SEP


def test_80_setup_without_instance_section_falls_back_to_9x() -> None:
    cfg = Config.from_text(LAYOUT_80.replace("StorageElementProxy\n", "Other\n", 1), use_default=True)
    assert cfg.service_section("DataManagement/StorageElementProxy") == SEP
    # a system with no 9.x section either: the 8.0 path is reported
    assert cfg.service_section("DataManagement/Nothing") == "/Systems/DataManagement/Prod/Services/Nothing"
    assert cfg.service_urls("Framework/Nothing") == []
    with pytest.raises(ConfigError, match="expected System/Service"):
        cfg.service_section("JustOne")


def test_module_level_config() -> None:
    try:
        set_config(None)
        first = get_config()
        assert get_config() is first
        mine = Config.load(use_default=False)
        set_config(mine)
        assert get_config() is mine
    finally:
        set_config(None)
