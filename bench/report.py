"""Shared by the bench scripts: replace one ``## <Area>`` section of docs/BENCHMARKS.md (keeping
its hand-written ``### Notes`` part), and the machine line every section opens with."""

from __future__ import annotations

import datetime
import os
import platform
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nMeasured by the scripts in `bench/`; each area owns its `## <area>` section.\n\n"


#: Sub-heading of hand-written notes at the end of a section: ``--write`` runs keep them.
NOTES_HEADING = "### Notes"


def _section_pattern(area: str) -> re.Pattern:
    return re.compile(rf"^## {re.escape(area)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)


def kept_notes(area: str, path: Path = BENCHMARKS) -> str:
    """The ``### Notes`` part of the current ``## <area>`` section ("" if none)."""
    match = _section_pattern(area).search(path.read_text()) if path.exists() else None
    if not match:
        return ""
    section = match.group(0)
    at = section.find("\n" + NOTES_HEADING)
    return section[at + 1:].rstrip("\n") + "\n" if at >= 0 else ""


def write_section(area: str, text: str, path: Path = BENCHMARKS) -> Path:
    """Replace the section starting with ``## <area>`` by ``text`` (or append it)."""
    current = path.read_text() if path.exists() else HEADER
    pattern = _section_pattern(area)
    if pattern.search(current):
        current = pattern.sub(lambda _m: text.rstrip("\n") + "\n\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current.rstrip("\n") + "\n")
    return path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, else the platform's machine type."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_line(load: float) -> str:
    """``<date> UTC, <cpu>, <n> cores, Python <v>, load average <load> at the start.``"""
    now = datetime.datetime.now(datetime.timezone.utc)
    return (f"{now:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, load average {load:.1f} at the start.")


def load_note(load: float) -> str:
    """How busy the machine was when the run started (its numbers' noise), one sentence."""
    if load < 0.7:
        return "Machine otherwise idle."
    return ("**Possibly noisy:** the 1-minute load average at the start shows other work on the "
            "2 cores (or the tail of the previous bench run); a quiet re-run may give higher numbers.")
