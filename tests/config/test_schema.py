"""seproxy.config.schema: typed reads, one-line errors naming option/file/value, validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from seproxy.config import Config, schema
from seproxy.config.schema import SERVICE, STORAGE_ELEMENT_PROXY, Option, parse_size
from seproxy.errors import ConfigError

SEP = "/Systems/DataManagement/Services/StorageElementProxy"
SEP80 = "/Systems/DataManagement/Prod/Services/StorageElementProxy"


def site(tmp_path: Path, body: str, *, layout80: bool = False) -> Path:
    """A site file with ``body`` as the service section (9.x layout, or 8.0 with a Setup)."""
    if layout80:
        text = ("DIRAC\n{\n  Setup = MySetup\n  Setups\n  {\n    MySetup\n    {\n"
                "      DataManagement = Prod\n    }\n  }\n}\n"
                "Systems\n{\n  DataManagement\n  {\n    Prod\n    {\n      Services\n      {\n"
                f"        StorageElementProxy\n        {{\n{body}\n        }}\n      }}\n    }}\n  }}\n}}\n")
    else:
        text = ("Systems\n{\n  DataManagement\n  {\n    Services\n    {\n"
                f"      StorageElementProxy\n      {{\n{body}\n      }}\n    }}\n  }}\n}}\n")
    path = tmp_path / "site.cfg"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("kind", "raw", "expected"), [
    ("int", " 9139 ", 9139), ("float", "2.5", 2.5), ("bool", "Yes", True), ("bool", "off", False),
    ("size", "64M", 64 << 20), ("size", "1.5K", 1536), ("size", "10", 10), ("list", "a, b ,,c", ["a", "b", "c"]),
    ("str", " x ", "x"),
])
def test_convert(kind, raw, expected):
    assert Option("X", kind, None, "help").convert(raw) == expected


@pytest.mark.parametrize(("option", "raw", "reason"), [
    (Option("P", "int", 1, "h", 0, 65535), "abc", "expected an integer"),
    (Option("P", "int", 1, "h", 0, 65535), "99999", "expected 0 to 65535"),
    (Option("P", "int", 1, "h", 0, 65535), "-1", "expected 0 to 65535"),
    (Option("B", "bool", False, "h"), "maybe", "expected yes or no"),
    (Option("B", "bool", False, "h"), "", "expected yes or no"),
    (Option("S", "size", 0, "h", 0), "-5M", "not a size >= 0"),
    (Option("S", "size", 0, "h", 0), "lots", "not a size"),
    (Option("F", "float", 1.0, "h", 0.001), "nan", "expected a finite number"),
    (Option("F", "float", 1.0, "h", 0.001), "0", "expected >= 0.001"),
    (Option("C", "choice", "a", "h", choices=("a", "b")), "c", "expected one of a, b"),
])
def test_convert_refuses(option, raw, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        option.convert(raw)


def test_parse_size_units():
    assert parse_size("10G") == 10 << 30 and parse_size("1T") == 1 << 40 and parse_size("2MiB") == 2 << 20


def test_missing_option_is_the_declared_default_in_both_layouts(tmp_path):
    for layout80, section in ((False, SEP), (True, SEP80)):
        cfg = Config.load([site(tmp_path, "Port = 9148", layout80=layout80)], use_default=False)
        assert cfg.service_section(schema.SERVICE_NAME) == section
        assert STORAGE_ELEMENT_PROXY.value(cfg, "Port", section) == 9148
        assert STORAGE_ELEMENT_PROXY.value(cfg, "BindAddress", section) == "127.0.0.1"
        assert STORAGE_ELEMENT_PROXY.value(cfg, "Encoding", section) == "dencode"
        assert STORAGE_ELEMENT_PROXY.value(cfg, "Authorization/FileTransfer/Default", section) == ["authenticated"]
        assert STORAGE_ELEMENT_PROXY.value(cfg, "MinFreeSpace", section) == 64 << 20


def test_framework_defaults_for_other_services():
    assert schema.service_schema("Test/Service") is SERVICE
    assert SERVICE.option("BindAddress").default == ""  # DIRAC: all interfaces
    assert SERVICE.option("Port").default == STORAGE_ELEMENT_PROXY.option("Port").default == 9139
    assert SERVICE.option("ThreadLimit/FileTransfer/ToClient").kind == "int"  # a pattern
    with pytest.raises(ConfigError, match="not declared"):
        SERVICE.option("NoSuchOption")


def test_bad_value_names_option_file_and_value(tmp_path):
    path = site(tmp_path, "Port = abc")
    cfg = Config.load([path], use_default=False)
    with pytest.raises(ConfigError) as info:
        STORAGE_ELEMENT_PROXY.value(cfg, "Port", SEP)
    assert str(info.value) == (f"invalid value 'abc' for {SEP}/Port in {path}: "
                               "expected an integer")


def test_bad_value_from_an_override_says_so(tmp_path):
    cfg = Config.load([site(tmp_path, "Port = 1")], use_default=False, overrides=[f"{SEP}/HttpAccess=maybe"])
    with pytest.raises(ConfigError, match=re.escape(f"for {SEP}/HttpAccess in override -o {SEP}/HttpAccess: "
                                                    "expected yes or no")):
        schema.validate(cfg)


def test_bad_global_value(tmp_path):
    path = tmp_path / "g.cfg"
    path.write_text("DIRAC\n{\n  Security\n  {\n    SessionCacheSize = 0\n  }\n}\n")
    cfg = Config.load([path], use_default=False)
    with pytest.raises(ConfigError, match=re.escape(
            f"invalid value '0' for /DIRAC/Security/SessionCacheSize in {path}: expected 1 to 10000000")):
        schema.validate(cfg)
    assert schema.value(None, "/DIRAC/Security/SessionCacheSize") == 4096


def test_validate_warns_about_unknown_options_only_in_the_service_section(tmp_path):
    body = ("Port = 1\nPrt = 2\nAuthorization\n{\nDefault = all\nFileTransfer\n{\nDefault = all\n}\n}\n"
            "ThreadLimit\n{\nFileTransfer\n{\nToClient = 3\n}\n}\nStrange\n{\nA = 1\nB = 2\n}")
    path = site(tmp_path, body)
    path.write_text(path.read_text() + "DIRAC\n{\n  Security\n  {\n    SomeDiracOption = 1\n  }\n}\n")
    warnings = schema.validate(Config.load([path], use_default=False))
    assert warnings == [
        f"unknown option {SEP}/Prt (from {path}) ignored (not a StorageElementProxy option; see docs/OPERATIONS.md)",
        f"unknown section {SEP}/Strange ignored (not a StorageElementProxy option; see docs/OPERATIONS.md)",
    ]


def test_every_declared_default_is_valid():
    for section in (STORAGE_ELEMENT_PROXY, *schema.GLOBAL_SECTIONS):
        for option in section.options:
            if option.kind in ("int", "float", "size", "choice", "bool"):
                assert option.convert(option.default_text()) == option.default, option.path


@pytest.mark.parametrize(("text", "line", "what"), [
    ("junk file\nwith words\n", 1, "'junk file' is neither an option"),
    ("A\n{\n  B = 1\n", 1, "section 'A' is never closed"),
    ("A\n{\n}\n}\n", 4, "'}' closes no section"),
    ("A\n{\n  B = 1 }\n}\n", 3, None),
    ("A { B = 1 }\n", 1, "put one statement per line"),
    ("A\n{\n  = 3\n}\n", 3, "option without a name"),
    ("A\n{\n  stray\n  B = 2\n}\n", 3, "'stray' is neither an option"),
])
def test_malformed_file_names_the_line(tmp_path, text, line, what):
    path = tmp_path / "bad.cfg"
    path.write_text(text)
    if what is None:  # a value may hold braces
        assert Config.load([path], use_default=False).getOption("/A/B") == "1 }"
        return
    with pytest.raises(ConfigError) as info:
        Config.load([path], use_default=False)
    assert str(info.value).startswith(f"Malformed configuration file {path}, line {line}: {what}")


def test_origin(tmp_path):
    first, second = tmp_path / "1.cfg", tmp_path / "2.cfg"
    first.write_text("A\n{\n  B = 1\n  C = 1\n}\n")
    second.write_text("A\n{\n  B = 2\n}\n")
    cfg = Config.load([first, second], use_default=False, overrides=["/A/D=4"])
    assert cfg.origin("/A/B") == str(second) and cfg.origin("/A/C") == str(first)
    assert cfg.origin("/A/D") == "override -o /A/D" and cfg.origin("/A/E") is None


def test_plugin_options(tmp_path):
    path = tmp_path / "se.cfg"
    path.write_text("Resources\n{\n  StorageElements\n  {\n    SE-S3\n    {\n      S3\n      {\n"
                    "        PluginName = S3\n        Port =\n        Timeout = soon\n      }\n    }\n  }\n}\n")
    cfg = Config.load([path], use_default=False)
    with pytest.raises(ConfigError) as info:
        schema.validate(cfg)
    assert str(info.value) == ("invalid value 'soon' for /Resources/StorageElements/SE-S3/S3/Timeout "
                               f"in {path}: expected a number")
    where = "/Resources/StorageElements/SE-S3/S3"
    assert schema.plugin_value("S3", {"Port": "", "Timeout": "3"}, "Timeout", where) == 3.0
    assert schema.plugin_value("S3", {"Port": ""}, "Port", where) == 0  # empty: the default
    assert schema.plugin_value("S3", {}, "MultipartChunkSize", where) == 16 << 20
    with pytest.raises(ConfigError, match=re.escape(f"invalid value '1K' for {where}/MultipartChunkSize: "
                                                    "expected >= 5M")):
        schema.plugin_value("S3", {"MultipartChunkSize": "1K"}, "MultipartChunkSize", where)
    with pytest.raises(ConfigError, match="no options declared"):
        schema.plugin_value("Nope", {}, "Timeout", where)


def test_port_defaults_agree_everywhere():
    """DIRAC's 9139: the schema (framework and service), the dev site's URL, the docs."""
    assert SERVICE.option("Port").default == 9139 == STORAGE_ELEMENT_PROXY.option("Port").default
    cfg = Config.load()
    assert cfg.service_urls(schema.SERVICE_NAME) == [
        "dips://localhost:9139/DataManagement/StorageElementProxy"]
    assert schema.service_schema("Test/Service").value(Config.from_text("", use_default=False), "Port",
                                                     "/Systems/Test/Services/Service") == 9139


def test_empty_on_purpose_and_canonical_choices():
    port = STORAGE_ELEMENT_PROXY.option("MetricsPort")
    assert port.convert("") is None and port.convert("0") == 0 and port.default is None
    with pytest.raises(ValueError, match="expected 0 to 65535 or empty"):
        port.convert("-1")
    assert STORAGE_ELEMENT_PROXY.option("LogLevel").convert("debug") == "DEBUG"
    assert STORAGE_ELEMENT_PROXY.option("Protocol").convert("DIPS") == "dips"


def test_dirac_plugin_names_take_their_plugin_s_options(tmp_path):
    """PluginName = GFAL2_HTTPS / GFAL2_XROOT (DIRAC's names) are checked as HTTPS / XROOT."""
    path = tmp_path / "se.cfg"
    path.write_text("Resources\n{\n  StorageElements\n  {\n    SE-DAV\n    {\n      HTTPS\n      {\n"
                    "        PluginName = GFAL2_HTTPS\n        Retries = many\n      }\n    }\n  }\n}\n")
    with pytest.raises(ConfigError, match="invalid value 'many' for "
                       "/Resources/StorageElements/SE-DAV/HTTPS/Retries"):
        schema.validate(Config.load([path], use_default=False))
    assert schema.PLUGIN_ALIASES == {"GFAL2_XROOT": "XROOT", "GFAL2_HTTPS": "HTTPS"}
