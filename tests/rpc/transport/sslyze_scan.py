"""Runs in the sslyze virtualenv (``test_tls_scan.SSLYZE``), not in the test process.

sslyze pins an older cryptography than seproxy supports, so it lives in a venv of its
own; this script scans one TLS port and prints what the test checks as JSON:
``{"status", "error", "client_auth", "commands": {name: {"status", "error", "accepted"}}}``.

Usage: ``python sslyze_scan.py <ip> <port> <server name> <scan command>...``
"""

from __future__ import annotations

import json
import sys

from sslyze import (
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)


def scan(ip: str, port: int, name: str, commands: list[str]) -> dict:
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(name, port, ip_address=ip),
        network_configuration=ServerNetworkConfiguration(name),
        scan_commands={ScanCommand(command) for command in commands})
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = list(scanner.get_results())
    report: dict = {"status": result.scan_status.name, "error": result.connectivity_error_trace
                    and str(result.connectivity_error_trace), "commands": {}}
    if result.scan_status != ServerScanStatusEnum.COMPLETED:
        return report
    report["client_auth"] = result.connectivity_result.client_auth_requirement.name
    for command in commands:
        attempt = getattr(result.scan_result, command)
        entry = {"status": attempt.status.name, "error": attempt.error_trace and str(attempt.error_trace)}
        if attempt.status == ScanCommandAttemptStatusEnum.COMPLETED:
            entry["accepted"] = [c.cipher_suite.name for c in attempt.result.accepted_cipher_suites]
        report["commands"][command] = entry
    return report


if __name__ == "__main__":
    ip, port, name, *names = sys.argv[1:]
    print(json.dumps(scan(ip, int(port), name, names)))
