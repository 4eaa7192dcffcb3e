"""A running ``seproxy serve`` dev site shared by a test module, and helpers to run the
``seproxy`` command against it (piped, or under a pseudo-terminal)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import services
from tests.fixtures.services import REPO_ROOT, stop_serve


@dataclass
class DevSite:
    proc: subprocess.Popen
    data: Path
    url: str
    lines: list[str]

    @property
    def client_args(self) -> list[str]:
        return ["--url", self.url, "--data-dir", str(self.data)]

    def run(self, *args: str, input: bytes | str | None = None, cwd: Path | None = None,
            env: dict | None = None, text: bool = True, client: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """``python -m seproxy ARGS [--url URL --data-dir DIR]``, output piped."""
        argv = [sys.executable, "-m", "seproxy", *args] + (self.client_args if client else [])
        return subprocess.run(argv, input=input, capture_output=True, text=text, cwd=cwd,
                              env=client_env(env), timeout=timeout)


def client_env(extra: dict | None = None) -> dict:
    """No DIRAC proxy from the environment of the test run; the repository importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("X509_USER_PROXY", "GRID_PROXY_FILE")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


def run_tty(argv: list[str], *, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 600) -> tuple[int, str]:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal; (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120x40
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=cwd,
                            env=client_env(env), close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                raise TimeoutError(f"{argv} still running after {timeout} s")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer exited
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def dev_site(tmp_path_factory) -> DevSite:
    data = tmp_path_factory.mktemp("site") / "data"
    proc, lines = services.start_serve(data, env=client_env({"X509_USER_PROXY": str(data / "none")}))
    url = next(m.group(0) for line in lines if (m := re.search(r"dips://\S+", line)))
    yield DevSite(proc, data, url, lines)
    stop_serve(proc)
