"""The fault battery's short form (bench/faults.py --quick): every replayed defect stays
fixed and a normal client keeps being served during the attacks. Figures (latencies)
are reported by the script, never asserted here; docs/RELIABILITY.md has the full run."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(900)


def load_faults():
    spec = importlib.util.spec_from_file_location("bench_faults", REPO_ROOT / "bench" / "faults.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_fault_battery_quick(capsys):
    faults = load_faults()
    code = faults.main(["--quick", "--seproxy-client", "--seconds", "2",
                        "--cases", "availability,1,2b,2d,7,5,8,9,10,11,12,13,malformed,clientkill"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("| pass |") == 14, out
