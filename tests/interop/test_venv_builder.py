"""The DIRAC venv builder: loud failure (never a silent skip) without PyPI, cache reuse, one build per race."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import dirac

pytestmark = pytest.mark.interop

# An index on a closed loopback port and no local wheel sources: "PyPI is unreachable".
UNREACHABLE = {"PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
               "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "", "PIP_NO_CACHE_DIR": "1"}


def _seed_m2crypto_wheel(cache):
    """Copy the already built M2Crypto wheel so the test reaches the DIRAC install step."""
    source = next((dirac.interop_cache_dir() / "wheels").glob(f"{dirac.M2CRYPTO}-*"))
    shutil.copytree(source, cache / "wheels" / source.name)


def test_unreachable_pypi_is_a_clear_failure(dirac9_venv, tmp_path):
    cache = tmp_path / "cache"
    _seed_m2crypto_wheel(cache)
    with pytest.raises(pytest.fail.Exception) as failure:
        dirac.venv_or_fail(dirac.DIRAC9, cache, env=UNREACHABLE)
    message = str(failure.value)
    assert "pip install of DIRAC 9.1.22 failed" in message
    assert "PyPI" in message and "not skippable" in message
    # nothing half-built is left where the next run would take it for a venv
    assert not list((cache / "venvs").iterdir())


def test_venv_is_reused_from_the_cache(dirac9_venv):
    again = dirac.ensure_venv(dirac.DIRAC9)
    assert again.path == dirac9_venv.path
    assert (again.path / "seproxy-interop-ready.json").is_file()


RACE_SCRIPT = """
import sys
from pathlib import Path
from tests.fixtures import dirac
spec = dirac.VenvSpec("lock-test", "0", (), smoke_test="import M2Crypto.SSL")
print(dirac.ensure_venv(spec, Path(sys.argv[1]), env=dict(arg.split("=", 1) for arg in sys.argv[2:])).path)
"""


def test_concurrent_builders_build_once(dirac9_venv, tmp_path):
    """Two pytest processes asking for the same venv: one builds, the other waits and reuses it."""
    cache = tmp_path / "cache"
    _seed_m2crypto_wheel(cache)
    argv = [sys.executable, "-c", RACE_SCRIPT, str(cache), *(f"{k}={v}" for k, v in UNREACHABLE.items())]
    procs = [subprocess.Popen(argv, cwd=dirac.INTEROP_DIR.parent.parent, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [proc.communicate(timeout=300) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), results
    paths = {out.strip() for out, _err in results}
    assert len(paths) == 1, paths
    assert sum(err.count("seproxy-interop: building") for _out, err in results) == 1, results
    assert [p.name for p in (cache / "venvs").iterdir()] == [Path(paths.pop()).name]  # no leftovers
