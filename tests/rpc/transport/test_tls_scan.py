"""sslyze scan of a listening dips port, both backends: protocol versions, ciphers, client auth."""

from __future__ import annotations

import pytest
from sslyze import (
    ClientAuthRequirementEnum,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

from tests.rpc.transport.tlshelpers import BACKENDS, roundtrip, tls_cfg

OLD = {"ssl_2_0_cipher_suites": ScanCommand.SSL_2_0_CIPHER_SUITES,
       "ssl_3_0_cipher_suites": ScanCommand.SSL_3_0_CIPHER_SUITES,
       "tls_1_0_cipher_suites": ScanCommand.TLS_1_0_CIPHER_SUITES,
       "tls_1_1_cipher_suites": ScanCommand.TLS_1_1_CIPHER_SUITES}
CURRENT = {"tls_1_2_cipher_suites": ScanCommand.TLS_1_2_CIPHER_SUITES,
           "tls_1_3_cipher_suites": ScanCommand.TLS_1_3_CIPHER_SUITES}
WEAK = ("NULL", "EXPORT", "RC4", "3DES", "DES_CBC", "MD5", "anon")


@pytest.mark.parametrize("backend", BACKENDS)
def test_sslyze_scan(backend, pki, registry_cfg, echo_server):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend)
    server = echo_server("dips", cfg)
    request = ServerScanRequest(
        server_location=ServerNetworkLocation("localhost", server.port, ip_address="127.0.0.1"),
        network_configuration=ServerNetworkConfiguration("localhost"),
        scan_commands=set(OLD.values()) | set(CURRENT.values()))
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = list(scanner.get_results())
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    assert result.connectivity_result.client_auth_requirement == ClientAuthRequirementEnum.REQUIRED
    for name in [*OLD, *CURRENT]:
        attempt = getattr(result.scan_result, name)
        assert attempt.status == ScanCommandAttemptStatusEnum.COMPLETED, (name, attempt.error_trace)
        accepted = [c.cipher_suite.name for c in attempt.result.accepted_cipher_suites]
        if name in OLD:
            assert accepted == [], (name, accepted)
        else:
            assert accepted, name
            assert not [c for c in accepted if any(w in c for w in WEAK)], accepted
    ok, error = roundtrip(server.port, cfg, proxy_location=str(pki.proxy()))  # still serving
    assert ok, error
