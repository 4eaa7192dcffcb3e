"""The DIRAC venv builder fails loudly (never silently skips) when PyPI cannot be reached."""

from __future__ import annotations

import shutil

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
