"""docs/OPERATIONS.md's configuration table agrees with seproxy/config/default.cfg."""

from __future__ import annotations

import re

from diraccfg import CFG

from seproxy.config import default_config_path
from tests.conftest import REPO_ROOT

SECTION = "Systems/DataManagement/Services/StorageElementProxy"


def flatten(node: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_configuration_table_matches_default_cfg():
    tree = CFG().loadFromFile(str(default_config_path())).getAsDict()
    for part in SECTION.split("/"):
        tree = tree[part]
    options = flatten(tree)
    text = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([A-Za-z/]+)` \| (`[^`]*`|empty) \|", text, re.M))
    assert set(rows) == set(options), (set(rows) ^ set(options))
    for name, value in options.items():
        assert rows[name] == (f"`{value}`" if value else "empty"), name
