"""Shared by the bench scripts: replace one ``## <Area>`` section of docs/BENCHMARKS.md."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nMeasured by the scripts in `bench/`; each area owns its `## <area>` section.\n\n"


def write_section(area: str, text: str, path: Path = BENCHMARKS) -> Path:
    """Replace the section starting with ``## <area>`` by ``text`` (or append it)."""
    current = path.read_text() if path.exists() else HEADER
    pattern = re.compile(rf"^## {re.escape(area)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(lambda _m: text.rstrip("\n") + "\n\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current.rstrip("\n") + "\n")
    return path
