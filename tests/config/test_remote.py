"""Config's remote layer (Configuration Server data): below the site files, above the
embedded default; reload keeps it and runs the reload hooks."""

from __future__ import annotations

import pytest

from seproxy.config import Config
from seproxy.errors import ConfigError


def test_remote_sits_between_default_and_site_files(tmp_path):
    site = tmp_path / "site.cfg"
    site.write_text("Registry\n{\n  DefaultGroup = local\n}\n")
    cfg = Config.load([site])
    default_port = cfg.getOption("/Systems/DataManagement/Services/StorageElementProxy/Port")
    assert cfg.set_remote("Registry\n{\n  DefaultGroup = remote\n  Extra = x\n}\n"
                          "Systems\n{\n  DataManagement\n  {\n    Services\n    {\n"
                          "      StorageElementProxy\n      {\n        Port = 1\n      }\n    }\n  }\n}\n")
    assert cfg.getValue("/Registry/DefaultGroup") == "local"   # local wins
    assert cfg.getValue("/Registry/Extra") == "x"              # remote adds
    assert cfg.getOption("/Systems/DataManagement/Services/StorageElementProxy/Port") == "1"
    assert default_port != "1"                                 # remote beats the embedded default
    cfg.reload()
    assert cfg.getValue("/Registry/Extra") == "x"


def test_same_text_does_not_bump_generation_and_none_drops_it():
    cfg = Config.from_text("A\n{\n  B = 1\n}\n")
    assert cfg.set_remote("R\n{\n  X = 1\n}\n")
    generation = cfg.generation
    assert not cfg.set_remote("R\n{\n  X = 1\n}\n")
    assert cfg.generation == generation
    assert cfg.set_remote(None)
    assert cfg.getOption("/R/X") is None and cfg.getOption("/A/B") == "1"


def test_malformed_remote_text_is_refused_and_nothing_changes():
    cfg = Config.from_text("A\n{\n  B = 1\n}\n")
    generation = cfg.generation
    with pytest.raises(ConfigError, match="Malformed configuration data"):
        cfg.set_remote("R\n{\n  X = 1\n}\nR\n{\n}\n")
    assert cfg.generation == generation


def test_remote_that_conflicts_with_local_files_is_refused_whole():
    cfg = Config.from_text("Registry\n{\n  VO\n  {\n    dirac\n    {\n    }\n  }\n}\n")
    cfg.set_remote("Registry\n{\n  DefaultGroup = a\n}\n")
    with pytest.raises(ConfigError, match="does not merge"):
        cfg.set_remote("Registry\n{\n  DefaultGroup = b\n  VO = x\n}\n")
    assert cfg.getValue("/Registry/DefaultGroup") == "a"


def test_reload_runs_hooks():
    cfg = Config.from_text("")
    seen = []
    cfg.add_reload_hook(lambda from_master: seen.append(from_master))
    cfg.reload()
    cfg.reload(from_master=True)
    assert seen == [False, True]
