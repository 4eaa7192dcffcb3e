"""Smoke tests of the real-DIRAC peer fixtures: venv, runner, DIRAC 9 services on loopback."""

from __future__ import annotations

import datetime

import pytest

pytestmark = pytest.mark.interop


def test_runner_round_trips_tagged_types(dirac9_client):
    value = {"b": b"\x00\xff", "t": (1, "x"), 3: [None, True, 1.5],
             "d": datetime.datetime(2024, 5, 6, 7, 8, 9)}
    out = dirac9_client.run({"exec": "import DIRAC\nresult = (DIRAC.version, args[0])", "args": [value]})
    assert out[0].unwrap() == ("9.1.22", value)


def test_runner_encoding_per_call_does_not_leak(dirac9_client):
    probe = "import os\nresult = os.environ.get('DIRAC_USE_JSON_ENCODE')"
    outs = dirac9_client.run({"exec": probe, "encoding": "dencode"}, {"exec": probe},
                             {"exec": probe, "encoding": "json"})
    assert [o.unwrap() for o in outs] == ["No", None, "Yes"]


def test_runner_reports_exceptions(dirac9_client):
    out = dirac9_client.run({"exec": "raise KeyError('nope')"})
    assert not out[0].ok and out[0].error == "KeyError: 'nope'"


def test_dirac9_client_pings_dirac9_service(dirac9_client, dirac9_service):
    result = dirac9_client.rpc(dirac9_service.url, "ping")
    assert result["OK"], result
    assert result["Value"]["name"] == "Test/Interop"
    assert result["Value"]["version"] == "9.1.22"


def test_dirac9_service_binds_loopback_only(dirac9_service):
    import psutil

    addresses = {c.laddr.ip for c in psutil.Process(dirac9_service.process.pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN}
    assert addresses and addresses <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, addresses


def test_interop_handler_runs_on_dirac(dirac9_client, dirac9_service):
    whoami = dirac9_client.rpc(dirac9_service.url, "whoamiLike")
    assert whoami["OK"], whoami
    assert whoami["Value"]["username"] == "testuser"
    assert whoami["Value"]["group"] == "dirac_user"
    echo = dirac9_client.rpc(dirac9_service.url, "echoValue", {"k": (1, 2)})
    assert echo["OK"] and echo["Value"] == {"k": [1, 2]}  # JSON turns tuples into lists


def test_dirac9_transfer_client_round_trip_with_dirac9_storage_element(dirac9_client, dirac9_storage_element,
                                                                        tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 4099)
    sent = dirac9_client.transfer(dirac9_storage_element.url, "sendFile", str(source), "dir/file.bin")
    assert sent["OK"], sent
    assert (dirac9_storage_element.storage_path / "dir" / "file.bin").read_bytes() == source.read_bytes()
    back = tmp_path / "back.bin"
    received = dirac9_client.transfer(dirac9_storage_element.url, "receiveFile", str(back), "dir/file.bin")
    assert received["OK"], received
    assert back.read_bytes() == source.read_bytes()


def test_dirac8_client_pings_dirac9_service(dirac8_client, dirac9_service):
    result = dirac8_client.rpc(dirac9_service.url, "ping")
    assert result["OK"], result
    assert result["Value"]["name"] == "Test/Interop"


def test_dirac8_service_runs_interop_handler(dirac8_client, dirac_services):
    service = dirac_services.interop(version=8, encoding="dencode")
    result = dirac8_client.rpc(service.url, "echoValue", (1, b"x"))
    assert result["OK"], result
    assert result["Value"] == (1, "x")  # DEncode keeps tuples and turns bytes into str


def test_dirac8_storage_element_proxy_service_starts(dirac8_client, dirac_services, tmp_path_factory):
    """DIRAC 8.0's own StorageElementProxy (the original of seproxy's) runs as a peer too."""
    cache = tmp_path_factory.mktemp("dirac8-proxy-cache")
    service = dirac_services.start("se-proxy-8", {"DataManagement/StorageElementProxy": {
        "BasePath": cache, "HttpAccess": "False"}}, version=8)
    ping = dirac8_client.rpc(service.url, "ping")
    assert ping["OK"], ping
    assert ping["Value"]["name"] == "DataManagement/StorageElementProxy"
    assert ping["Value"]["version"] == "8.0.86"
