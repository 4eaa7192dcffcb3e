"""Issue 3 interop: TLS handshakes between seproxy and real DIRAC 9, both TLS backends.

* A real DIRAC 9 client holding a proxy made by ``seproxy proxy-init`` completes the
  handshake with a bare seproxy transport; the credential dict seproxy computes for
  that proxy equals the one a real DIRAC 9 server computes for it (``whoami``), and
  DIRAC's view of the seproxy server equals its view of a DIRAC server with the same
  host certificate.
* seproxy's client transport completes the handshake with a real DIRAC 9 DISET
  server; its view of the server equals DIRAC's client view.
* Full stack: DIRAC's ``whoami`` against a seproxy service equals DIRAC 9's answer
  for user, admin and limited proxies from ``seproxy proxy-init``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from seproxy.config import Config
from seproxy.rpc.client.base import RPCClient
from seproxy.rpc.transport import connect, listen
from tests.fixtures.services import service_config
from tests.interop.compare import normalise, strict_diff
from tests.interop.InteropHandler import InteropHandler

pytestmark = pytest.mark.interop

BACKENDS = ["pyopenssl", "m2crypto"]
SECONDS_LEFT_TOLERANCE = 900


def proxy_init(pki, directory: Path, group: str, *extra: str) -> Path:
    """A proxy written by the real ``seproxy proxy-init`` command."""
    out = directory / f"x509up-{group}{'-'.join(extra)}"
    proc = subprocess.run([sys.executable, "-m", "seproxy", "proxy-init", "--group", group,
                           "--cert", str(pki.user_cert), "--key", str(pki.user_key), "--out", str(out),
                           *extra], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def without_chain(credentials: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in credentials.items() if k != "x509Chain"}


def assert_same_credentials(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> None:
    """Same keys in the same order, same values; ``secondsLeft`` positive and close."""
    diff = strict_diff(normalise({"OK": True, "Value": without_chain(ours)})["Value"],
                       normalise({"OK": True, "Value": without_chain(theirs)})["Value"])
    assert diff is None, f"{what}: {diff}\n  seproxy: {ours!r}\n  DIRAC:   {theirs!r}"
    assert ours["secondsLeft"] > 0 and theirs["secondsLeft"] > 0
    assert abs(ours["secondsLeft"] - theirs["secondsLeft"]) <= SECONDS_LEFT_TOLERANCE


def backend_config(pki, backend: str) -> Config:
    cfg = service_config("Test/Interop", protocol="dips", pki=pki)
    cfg.setOption("/DIRAC/Security/TLSBackend", backend)
    return cfg


@pytest.fixture(scope="module")
def proxies(pki, tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("proxy-init")
    return {"user": proxy_init(pki, directory, "dirac_user"),
            "admin": proxy_init(pki, directory, "dirac_admin"),
            "limited": proxy_init(pki, directory, "dirac_user", "--limited")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_dirac_client_with_proxy_init_proxy_handshakes_with_seproxy_transport(
        backend, pki, proxies, dirac9_client, dirac9_service):
    listener = listen("dips", "127.0.0.1", 0, cfg=backend_config(pki, backend))
    seen: dict[str, Any] = {}

    def serve_one() -> None:
        transport = listener.accept()
        try:
            transport.handshake(timeout=60)
            seen["credentials"] = transport.peer_credentials()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            seen["error"] = exc
        finally:
            transport.close()

    server = threading.Thread(target=serve_one, daemon=True)
    server.start()
    try:
        to_seproxy, peer_info, to_dirac = dirac9_client.with_(proxy=proxies["user"]).run(
            {"handshake": ["127.0.0.1", listener.port]},
            {"peer_info": str(proxies["user"])},
            {"handshake": ["127.0.0.1", dirac9_service.port]})
        server.join(timeout=120)
    finally:
        listener.close()
    assert to_seproxy.unwrap()["OK"], to_seproxy.value
    assert "error" not in seen, seen.get("error")
    # a DIRAC server's transport and seproxy's compute the same dict for the proxy-init proxy
    dirac_view = peer_info.unwrap()
    assert dirac_view["group"] == "dirac_user" and dirac_view["isProxy"] is True
    assert list(seen["credentials"]) == list(dirac_view), "key order (x509Chain included)"
    assert_same_credentials(seen["credentials"], dirac_view, "client proxy")
    # and DIRAC's client sees the seproxy server exactly as it sees a DIRAC server
    assert_same_credentials(to_seproxy.value["Value"], to_dirac.unwrap()["Value"], "server as seen by DIRAC")


@pytest.mark.parametrize("backend", BACKENDS)
def test_seproxy_client_handshakes_with_dirac9_server(backend, pki, proxies, dirac9_client, dirac9_service):
    cfg = backend_config(pki, backend)
    transport = connect("dips", "127.0.0.1", dirac9_service.port, cfg=cfg, timeout=60,
                        proxy_location=str(proxies["user"]))
    try:
        ours = transport.peer_credentials()
    finally:
        transport.close()
    theirs = dirac9_client.with_(proxy=proxies["user"]).handshake("127.0.0.1", dirac9_service.port)
    assert theirs["OK"], theirs
    assert_same_credentials(ours, theirs["Value"], "DIRAC 9 server as seen by the client")
    assert ours["DN"] == pki.host_dn
    # a whole RPC over that backend: DIRAC's server identifies us as DIRAC's client would be
    answer = RPCClient(dirac9_service.url, config=cfg, proxyLocation=str(proxies["user"])).whoami()
    assert answer["OK"], answer
    expected = dirac9_client.with_(proxy=proxies["user"]).rpc(dirac9_service.url, "whoami")
    assert_same_credentials(answer["Value"], expected["Value"], "whoami on DIRAC 9, seproxy vs DIRAC client")


@pytest.fixture(scope="module", params=BACKENDS)
def seproxy_dips(request, pki, seproxy_service_module, tmp_path_factory):
    return seproxy_service_module(
        InteropHandler, name="Test/Interop", protocol="dips",
        options={"StoragePath": str(tmp_path_factory.mktemp("tls-interop-store"))},
        authorization={"Default": "authenticated"},
        cfg_text=f"DIRAC\n{{\n  Security\n  {{\n    TLSBackend = {request.param}\n  }}\n}}\n")


@pytest.mark.parametrize("identity", ["user", "admin", "limited"])
def test_dirac_whoami_on_seproxy_equals_dirac9(identity, proxies, dirac9_client, dirac9_service, seproxy_dips):
    client = dirac9_client.with_(proxy=proxies[identity])
    ours, theirs = client.run(*({"rpc": url, "method": "whoami", "args": []}
                                for url in (seproxy_dips.url, dirac9_service.url)))
    ours, theirs = ours.unwrap(), theirs.unwrap()
    assert ours["OK"] and theirs["OK"], (ours, theirs)
    assert theirs["Value"]["isLimitedProxy"] is (identity == "limited")
    assert_same_credentials(ours["Value"], theirs["Value"], f"whoami as {identity}")
