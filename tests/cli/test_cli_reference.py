"""docs/OPERATIONS.md's command-line reference is the one the parser generates."""

from __future__ import annotations

from seproxy.cli.reference import END, START, render
from tests.conftest import REPO_ROOT


def test_reference_matches_the_parser():
    text = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    documented = text.split(START, 1)[1].split(END, 1)[0]
    assert documented == "\n" + render(), ("docs/OPERATIONS.md is out of date: run "
                                           "python -m seproxy.cli.reference --write docs/OPERATIONS.md")


def test_reference_names_every_subcommand():
    reference = render()
    for command in ("serve", "ping", "whoami", "put", "get", "ls", "stat", "mkdir", "rm",
                    "http-url", "call", "pki init", "proxy-init", "proxy-info"):
        assert f"### seproxy {command}\n" in reference
    assert "| `-f, --force` | overwrite an existing LFN |" in reference
