"""docs/OPERATIONS.md's option reference is the one seproxy/config/schema.py renders."""

from __future__ import annotations

import subprocess
import sys

from seproxy.config import schema
from tests.conftest import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "options_doc.py"


def test_operations_doc_matches_the_schema():
    text = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    assert schema.markdown_reference() in text
    done = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_fails_when_the_doc_drifts(tmp_path, monkeypatch):
    sys.path.insert(0, str(TOOL.parent))
    try:
        import options_doc
    finally:
        sys.path.remove(str(TOOL.parent))
    drifted = tmp_path / "OPERATIONS.md"
    text = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    drifted.write_text(text.replace("| `Port` | integer | `9139` |", "| `Port` | integer | `9876` |"))
    monkeypatch.setattr(options_doc, "DOC", drifted)
    assert options_doc.main(["--check"]) == 1
    assert options_doc.main([]) == 0
    assert drifted.read_text(encoding="utf-8") == text


def test_every_documented_row_is_declared():
    for section in (schema.STORAGE_ELEMENT_PROXY, *schema.GLOBAL_SECTIONS):
        table = schema.markdown_table(section)
        for option in section.options:
            assert f"| `{option.path}` |" in table
