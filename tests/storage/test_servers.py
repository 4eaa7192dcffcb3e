"""The storage test servers themselves (loopback only) and plugins facing a server that is down."""

from __future__ import annotations

import re

import psutil
import pytest

from seproxy.storage import StorageCredentials, StorageElement
from tests.conftest import free_port
from tests.storage.helpers import dip_section, make_config, se_tree


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    conns = psutil.Process(pid).net_connections(kind="inet")
    return {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}


def test_xrootd_listens_on_loopback_only(xrootd_server) -> None:
    addresses = listening_addresses(xrootd_server.pid)
    assert ("127.0.0.1", xrootd_server.port) in addresses
    assert all(ip in ("127.0.0.1", "::1") for ip, _ in addresses), addresses


def test_moto_listens_on_loopback_only(moto_s3) -> None:
    addresses = listening_addresses(moto_s3.proc.pid)
    assert addresses and all(ip in ("127.0.0.1", "::1") for ip, _ in addresses), addresses


def _down_se(section: dict, protocol: str, creds=None, security=None) -> StorageElement:
    tree = se_tree("SE-DOWN", {"Main": section}, AccessProtocols=protocol, WriteProtocols=protocol)
    if security:
        tree["DIRAC"]["Security"] = security
    return StorageElement("SE-DOWN", config=make_config(tree), credentials=creds)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("plugin", ["S3", "XROOT", "DIP"])
def test_backend_down_fails_each_lfn_with_a_reason(plugin: str, tmp_path, request) -> None:
    port = free_port()  # nothing listens there
    creds = security = None
    if plugin == "S3":
        section = dict(
            request.getfixturevalue("moto_s3").section("b", Timeout="3", Retries="1"),
            Port=str(port),
        )
        protocol = "s3"
    elif plugin == "XROOT":
        section = dict(
            request.getfixturevalue("xrootd_server").section("/", Timeout="3"), Port=str(port)
        )
        protocol = "root"
    else:
        pki = request.getfixturevalue("pki")
        section = dip_section(port, RetryDelay="0.1")
        protocol = "dips"
        creds = StorageCredentials(proxy_path=pki.proxy("dirac_user"))
        security = {"CALocation": str(pki.ca_dir)}
    se = _down_se(section, protocol, creds, security)
    src = tmp_path / "f.txt"
    src.write_bytes(b"data")
    lfns = ["/dirac/a.txt", "/dirac/b.txt"]
    for res in (
        se.getFileMetadata(lfns),
        se.putFile(dict.fromkeys(lfns, str(src))),
        se.exists(lfns),
    ):
        assert res["OK"], res
        assert not res["Value"]["Successful"]
        assert set(res["Value"]["Failed"]) == set(lfns)
        for reason in res["Value"]["Failed"].values():
            assert isinstance(reason, str) and re.search(r"(?i)connect|refused", reason), reason
