"""Test helpers for the storage tests: CFG text from nested dicts, SE configurations."""

from __future__ import annotations

from typing import Any

from seproxy.config import Config

VO = "dirac"


def cfg_text(tree: dict[str, Any], indent: int = 0) -> str:
    """DIRAC CFG text for a nested dict (lists become comma lists)."""
    pad = "  " * indent
    lines: list[str] = []
    for key, value in tree.items():
        if isinstance(value, dict):
            lines += [f"{pad}{key}", f"{pad}{{", cfg_text(value, indent + 1), f"{pad}}}"]
        else:
            text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            lines.append(f"{pad}{key} = {text}")
    return "\n".join(line for line in lines if line)


def se_tree(se_name: str, sections: dict[str, dict[str, Any]], **se_options: Any) -> dict[str, Any]:
    """``/Resources/StorageElements/<se_name>`` plus the VO option."""
    body: dict[str, Any] = dict(se_options)
    body.update(sections)
    return {"DIRAC": {"VirtualOrganization": VO}, "Resources": {"StorageElements": {se_name: body}}}


def make_config(tree: dict[str, Any]) -> Config:
    return Config.from_text(cfg_text(tree))


def file_section(path: str, **extra: Any) -> dict[str, Any]:
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
