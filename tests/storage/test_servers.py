"""The storage test servers themselves (loopback only) and plugins facing a server that is down."""

from __future__ import annotations

import psutil
import pytest

from seproxy.storage import StorageElement
from tests.conftest import free_port
from tests.storage.helpers import make_config, se_tree


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


def _down_se(section: dict, protocol: str) -> StorageElement:
    tree = se_tree("SE-DOWN", {"Main": section}, AccessProtocols=protocol, WriteProtocols=protocol)
    return StorageElement("SE-DOWN", config=make_config(tree))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("plugin", ["S3", "XROOT"])
def test_backend_down_fails_each_lfn_with_a_reason(
    plugin: str, tmp_path, moto_s3, xrootd_server
) -> None:
    port = free_port()  # nothing listens there
    if plugin == "S3":
        section = dict(moto_s3.section("bucket", Timeout="3", Retries="1"), Port=str(port))
        protocol = "s3"
    else:
        section = dict(xrootd_server.section("/", Timeout="3"), Port=str(port))
        protocol = "root"
    se = _down_se(section, protocol)
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
            assert reason and isinstance(reason, str)
