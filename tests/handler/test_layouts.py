"""The same security defaults whether the service section is in the DIRAC 9 or 8.0 layout.

A site file with a bare service section (no BindAddress, HttpHost, Encoding or
Authorization): the schema's defaults must apply wherever ``/DIRAC/Setup`` puts the
section: loopback only, answers in DEncode, and FileTransfer refused to an
unregistered DN and to a user claiming a group they are not in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seproxy.cli import wiring
from seproxy.config import Config
from seproxy.rpc.client.base import RPCClient
from seproxy.transfer.client import TransferClient
from tests.fixtures.cfgtext import cfg_text
from tests.handler.conftest import NAME, se_cfg

OTHER_DN = "/C=ch/O=DIRAC/OU=DIRAC Test/CN=layoutuser"


def registry(pki) -> str:
    return cfg_text({"Registry": {
        "DefaultGroup": "dirac_user",
        "Users": {"testuser": {"DN": pki.user_dn}, "layoutuser": {"DN": OTHER_DN}},
        "Groups": {"dirac_user": {"Users": "testuser, layoutuser", "Properties": "NormalUser"},
                   "dirac_admin": {"Users": "testuser", "Properties": "NormalUser, CSAdministrator"}},
        "Hosts": {"localhost": {"DN": pki.host_dn, "Properties": "TrustedHost"}},
    }})


def site_text(pki, base: Path, storage: Path, layout: str) -> str:
    service = {"Port": 0, "HttpAccess": "yes", "HttpPort": 0, "BasePath": str(base), "MaxThreads": 4,
               "HttpPurgeInterval": 0}
    dirac: dict = {"VirtualOrganization": "dirac",
                   "Security": {"CertFile": str(pki.host_cert), "KeyFile": str(pki.host_key),
                                "CALocation": str(pki.ca_dir)}}
    if layout == "8.0":
        dirac.update({"Setup": "MySetup", "Setups": {"MySetup": {"DataManagement": "Prod"}}})
        systems = {"DataManagement": {"Prod": {"Services": {"StorageElementProxy": service}}}}
    else:
        systems = {"DataManagement": {"Services": {"StorageElementProxy": service}}}
    return cfg_text({"DIRAC": dirac, "Systems": systems}) + registry(pki) + se_cfg(storage)


@pytest.fixture(params=["9", "8.0"])
def layout_service(request, pki, tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    cfg = Config.from_text(site_text(pki, tmp_path / "cache", storage, request.param), use_default=False)
    service = wiring.service(cfg, NAME).start()
    yield request.param, cfg, service
    service.stop(timeout=10)
    service.handler_class.state.stop()


def proxy(pki, tmp_path: Path, user: str, group: str) -> str:
    if user != "testuser":
        cert, _ = pki.dev.user_paths(user)
        if not cert.exists():
            pki.dev.issue_user(user, dn=OTHER_DN if user == "layoutuser" else None)
    return str(pki.dev.make_proxy(tmp_path / f"proxy-{user}-{group}.pem", user=user, group=group))


def test_section_found_in_its_layout(layout_service):
    layout, cfg, service = layout_service
    expected = ("/Systems/DataManagement/Prod/Services/StorageElementProxy" if layout == "8.0"
                else "/Systems/DataManagement/Services/StorageElementProxy")
    assert service.section == expected
    assert not cfg.isSection("/Systems/DataManagement/Services/StorageElementProxy/Authorization")


def test_listens_on_loopback_only(layout_service):
    _, _, service = layout_service
    assert service.listener.address[0] == "127.0.0.1"
    http = service.handler_class.state.http_thread
    assert http is not None and http.server.server_address[0] == "127.0.0.1"


def test_answers_in_dencode(layout_service):
    _, _, service = layout_service
    assert service.encoding == "dencode"


def test_file_transfer_is_not_allow_all(layout_service, pki, tmp_path):
    _, cfg, service = layout_service
    url = f"dips://127.0.0.1:{service.port}/{NAME}"
    auth = service.context.auth
    assert auth.getValidPropertiesForMethod("FileTransfer/FromClient") == ["authenticated"]
    assert auth.getValidPropertiesForMethod("uploadFile") == ["authenticated"]
    local = tmp_path / "five.bin"
    local.write_bytes(b"x" * 5000)

    def send(user: str, group: str) -> dict:
        client = TransferClient(url, config=cfg, proxyLocation=proxy(pki, tmp_path, user, group))
        return client.sendFile(str(local), "putFile/five.bin")

    stranger = send("stranger", "dirac_user")  # a trusted CA, a DN the Registry does not know
    assert not stranger["OK"] and "Unauthorized" in stranger["Message"], stranger
    claimed = send("layoutuser", "dirac_admin")  # registered, but not in dirac_admin
    assert not claimed["OK"], claimed
    assert not list((tmp_path / "cache").rglob("five.bin"))
    assert send("layoutuser", "dirac_user")["OK"]  # the same upload by a member goes through
    assert list((tmp_path / "cache").rglob("five.bin"))
    stranger_call = RPCClient(url, config=cfg, proxyLocation=proxy(pki, tmp_path, "stranger", "dirac_user"))
    refused = stranger_call.prepareFile("SE-LOCAL", "/dirac/x")
    assert not refused["OK"] and "Unauthorized" in refused["Message"], refused
