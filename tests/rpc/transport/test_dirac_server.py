"""Our TLS clients against a real DIRAC 9 DISET server (M2Crypto, OpenSSL 3.0).

DIRAC's server stalls for its 10 s handshake timeout on a *resumed* TLS 1.3
session and then drops the connection; our clients therefore keep sessions only
for servers that select the seproxy ALPN id, which DIRAC never does.  Repeated
connections must each get the proposal answer at once.
"""

from __future__ import annotations

import pytest

from seproxy.rpc import transport
from tests.rpc.transport.tlshelpers import BACKENDS, tls_cfg

pytestmark = pytest.mark.interop

PROPOSAL = {"OK": True, "Value": [["Test/Interop", "None", "dirac"], ["RPC", "ping"], "", "9.1.22"]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_connections_to_dirac9_server(backend, dirac9_service, pki, registry_cfg):
    cfg = tls_cfg(registry_cfg, cert=pki.host_cert, key=pki.host_key, ca_dir=pki.ca_dir,
                  backend=backend)
    host, port = dirac9_service.url.split("/")[2].split(":")
    proxy = str(pki.proxy())
    for _ in range(3):
        with transport.connect("dips", host, int(port), cfg=cfg, timeout=10,
                               proxy_location=proxy) as conn:
            conn.settimeout(8)  # below DIRAC's 10 s handshake timeout: a stall fails here
            assert conn.session_reused is False
            assert conn.tls_version == "TLSv1.3"
            conn.send_data(PROPOSAL, "json")
            assert conn.receive_data() == {"OK": True, "Value": None}
            conn.send_data({"OK": True, "Value": []}, "json")
            answer = conn.receive_data()
            assert answer["OK"] and answer["Value"]["name"] == "Test/Interop", answer
