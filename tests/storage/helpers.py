"""Test helpers for the storage tests: SE configurations (CFG text: ``tests.fixtures.cfgtext``)."""

from __future__ import annotations

from typing import Any

from seproxy.config import Config
from tests.fixtures.cfgtext import cfg_text

VO = "dirac"
__all__ = ["VO", "cfg_text", "dip_section", "file_section", "make_config", "se_tree"]


def se_tree(se_name: str, sections: dict[str, dict[str, Any]], **se_options: Any) -> dict[str, Any]:
    """``/Resources/StorageElements/<se_name>`` plus the VO option."""
    body: dict[str, Any] = dict(se_options)
    body.update(sections)
    return {"DIRAC": {"VirtualOrganization": VO}, "Resources": {"StorageElements": {se_name: body}}}


def make_config(tree: dict[str, Any]) -> Config:
    return Config.from_text(cfg_text(tree))


def file_section(path: str, **extra: Any) -> dict[str, Any]:
    """A protocol section for the File plugin rooted at ``path``."""
    section = {
        "PluginName": "File",
        "Protocol": "file",
        "Access": "remote",
        "Host": "",
        "Port": "",
        "Path": path,
    }
    section.update(extra)
    return section


def dip_section(port: int, **extra: Any) -> dict[str, Any]:
    """A protocol section for the DIP plugin against a DataManagement/StorageElement on
    127.0.0.1:``port`` (dips)."""
    section = {
        "PluginName": "DIP",
        "Protocol": "dips",
        "Access": "remote",
        "Host": "127.0.0.1",
        "Port": str(port),
        "Path": "/DataManagement/StorageElement",
    }
    section.update(extra)
    return section
