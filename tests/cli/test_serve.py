"""``seproxy serve`` on the embedded default, then the commands it prints, as printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import services
from tests.fixtures.services import stop_serve


def start_serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """``seproxy serve`` with a proxy path that does not exist (the dev proxy is used)."""
    return services.start_serve(data_dir, *extra,
                                env={**os.environ, "X509_USER_PROXY": str(data_dir / "no-such-proxy")})


def test_serve_prints_commands_that_work(tmp_path):
    data = tmp_path / "data"
    proc, lines = start_serve(data)
    try:
        text = "\n".join(lines)
        assert "created   development PKI" in text and "DISET     dips://127.0.0.1:" in text
        commands = [line.strip() for line in lines[lines.index("Try next (from another shell):") + 1:]
                    if line.startswith("  ")]
        assert any(c.startswith("seproxy ping ") for c in commands)
        outputs = []
        for command in commands:
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                                  timeout=120, env={**os.environ, "X509_USER_PROXY": ""})
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            outputs.append(done.stdout)
        joined = "\n".join(outputs)
        assert "DataManagement/StorageElementProxy at dips://" in joined and ": OK" in joined
        assert "user name     testuser" in joined and "group         dirac_user" in joined
        assert "/dirac/user/hello.txt stored on SE-LOCAL (11 bytes, adler32 " in joined
        assert (data / "hello.copy").read_text() == "hello grid\n"
        assert not [p.name for p in data.iterdir() if p.name.startswith(".hello.copy")]  # no temp left
        assert outputs[-1] == "hello grid\n"  # curl of the printed HTTP URL
        assert (data / "storage" / "dirac" / "user" / "hello.txt").read_text() == "hello grid\n"
    finally:
        assert stop_serve(proc) == 0
    # a second start reuses what exists
    proc, lines = start_serve(data)
    try:
        assert not any("created   development PKI" in line for line in lines)
    finally:
        stop_serve(proc)


def test_cli_errors_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "seproxy", "put", "/dirac/x",
                           str(tmp_path / "missing"), "SE-LOCAL", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"ERROR {tmp_path / 'missing'} is not a file\n"


def test_help_of_each_subcommand():
    from seproxy.cli import build_parser

    parser = build_parser()
    for command in ["serve", "ping", "whoami", "put", "get", "ls", "stat", "mkdir", "rm",
                    "http-url", "call", "proxy-info", "proxy-init"]:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args([command, "--help"])
        assert exit_info.value.code == 0
