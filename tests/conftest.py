"""Test-suite wide helpers (where the DIRAC-made vectors live, free ports, polling) and the
fixture modules every test may use (``pytest_plugins``)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Byte-exact encodings made by real DIRAC (how: ``tests/data/dirac-vectors/README.md``).
VECTORS_DIR = REPO_ROOT / "tests" / "data" / "dirac-vectors"


def load_vectors(name: str) -> list[dict[str, Any]]:
    """Load one ``tests/data/dirac-vectors/<name>`` JSON Lines file (fails loudly if missing)."""
    path = VECTORS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"DIRAC vectors not found at {path}")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (for servers that cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = 10.0,
             interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False).

    For conditions other threads or processes bring about (a server's clean-up after the
    client has its answer, a port file, a closed listener): wait on the real condition
    with a deadline, never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


# Imported ones first: tests.fixtures.dirac imports servers and mariadb (through
# tests.interop.peer_site), which then could no longer have their asserts rewritten.
pytest_plugins = [
    "tests.fixtures.pki",
    "tests.fixtures.services",
    "tests.fixtures.servers",
    "tests.fixtures.mariadb",
    "tests.fixtures.dirac",
]
