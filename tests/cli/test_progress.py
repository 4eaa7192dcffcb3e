"""Progress bars: every phase of put and get on a terminal (size, rate, ETA), none when piped."""

from __future__ import annotations

import os
import re
import sys

from seproxy.cli.progress import Bars
from tests.cli.conftest import run_tty

SIZE = 8 * 1024 * 1024


def test_bars_on_a_terminal_for_every_phase(dev_site, tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(SIZE))
    seproxy = [sys.executable, "-m", "seproxy"]
    code, out = run_tty([*seproxy, "put", "/dirac/user/p/big.bin", "big.bin", "SE-LOCAL",
                         *dev_site.client_args], cwd=tmp_path)
    assert code == 0, out
    upload = re.findall(r"upload big\.bin: 100%\|[^\r\n]*\| 8\.00M/8\.00M \[[0-9:]+<[0-9:]+, +[0-9.]+[kMG]?B/s\]", out)
    assert upload, out  # size, elapsed<ETA, rate
    assert re.search(r"uploadFile big\.bin -> SE-LOCAL: [0-9:]+ elapsed", out), out
    code, out = run_tty([*seproxy, "get", "/dirac/user/p/big.bin", "SE-LOCAL", "copy.bin",
                         *dev_site.client_args], cwd=tmp_path)
    assert code == 0, out
    assert re.search(r"prepareFile big\.bin on the proxy: [0-9:]+ elapsed", out), out
    bar = r"download big\.bin: 100%\|[^\r\n]*\| 8\.00M/8\.00M \[[0-9:]+<[0-9:]+, +[0-9.]+[kMG]?B/s\]"
    assert re.search(bar, out), out
    assert (tmp_path / "copy.bin").read_bytes() == (tmp_path / "big.bin").read_bytes()


def test_no_bar_when_piped(dev_site, tmp_path):
    (tmp_path / "small.bin").write_bytes(os.urandom(100_000))
    done = dev_site.run("put", "/dirac/user/p/small.bin", str(tmp_path / "small.bin"), "SE-LOCAL")
    assert done.returncode == 0 and done.stderr == ""
    done = dev_site.run("get", "/dirac/user/p/small.bin", "SE-LOCAL", str(tmp_path / "c.bin"))
    assert done.returncode == 0 and done.stderr == ""


def test_bars_off_draw_nothing():
    bars = Bars(enabled=False)
    assert not bars.enabled
    with bars.bytes("x", 10) as update, bars.waiting("y"):
        assert update is None
