"""sslyze scan of a listening dips port, both backends: protocol versions, ciphers, client auth.

sslyze pins an older cryptography than seproxy supports: it runs from a cached
virtualenv of its own (``SSLYZE``, built like the DIRAC peer venvs, under a file
lock) through ``sslyze_scan.py``, so the test environment keeps the newest
cryptography.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.interop.peer_venv import InteropSetupError, VenvSpec, ensure_venv
from tests.rpc.transport.tlshelpers import BACKENDS, roundtrip, tls_cfg

SSLYZE = VenvSpec("sslyze", "6.3.1", ("sslyze==6.3.1",), smoke_test="import sslyze", tool=True)
SCANNER = Path(__file__).with_name("sslyze_scan.py")

OLD = ["ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites",
       "tls_1_1_cipher_suites"]
CURRENT = ["tls_1_2_cipher_suites", "tls_1_3_cipher_suites"]
WEAK = ("NULL", "EXPORT", "RC4", "3DES", "DES_CBC", "MD5", "anon")


@pytest.fixture(scope="session")
def sslyze_python():
    try:
        return ensure_venv(SSLYZE).python
    except (InteropSetupError, OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"cannot prepare the sslyze venv: {exc}", pytrace=False)


def scan(python: Path, port: int) -> dict:
    proc = subprocess.run([str(python), str(SCANNER), "127.0.0.1", str(port), "localhost",
                           *OLD, *CURRENT], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, cwd=SCANNER.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sslyze_scan(backend, pki, registry_cfg, echo_server, sslyze_python):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend)
    server = echo_server("dips", cfg)
    result = scan(sslyze_python, server.port)
    assert result["status"] == "COMPLETED", result["error"]
    assert result["client_auth"] == "REQUIRED"
    for name in [*OLD, *CURRENT]:
        attempt = result["commands"][name]
        assert attempt["status"] == "COMPLETED", (name, attempt["error"])
        accepted = attempt["accepted"]
        if name in OLD:
            assert accepted == [], (name, accepted)
        else:
            assert accepted, name
            assert not [c for c in accepted if any(w in c for w in WEAK)], accepted
    ok, error = roundtrip(server.port, cfg, proxy_location=str(pki.proxy()))  # still serving
    assert ok, error
