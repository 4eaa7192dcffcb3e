"""The StorageElementProxy end to end over dips with seproxy's DIRAC-compatible clients,
in the order DIRAC's Proxy storage plugin makes the calls (PROTOCOL.md 10.8)."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess

from seproxy.localfs import file_adler32

SE = "SE-LOCAL"


def test_ping_and_whoami(se_proxy):
    ping = se_proxy.rpc().ping()
    assert ping["OK"] and ping["Value"]["name"] == "DataManagement/StorageElementProxy"
    who = se_proxy.rpc().whoami()
    assert who["OK"] and who["Value"]["username"] == "testuser"


def test_put_then_get_round_trip(se_proxy, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    local = tmp_path / "in.bin"
    local.write_bytes(data)
    lfn = "/dirac/user/t/in.bin"
    up = se_proxy.put(local, lfn)
    assert up["OK"], up
    assert up["Value"] == len(data)
    assert (se_proxy.storage / "dirac/user/t/in.bin").read_bytes() == data
    # the staged upload is gone, the catalogue knows the replica
    assert not list((se_proxy.base / "ns").rglob("in.bin"))
    assert se_proxy.state.catalogue.replicas(lfn) == [SE]
    assert se_proxy.state.catalogue.metadata(lfn)["Checksum"] == file_adler32(local)
    out = tmp_path / "out.bin"
    got = se_proxy.get(lfn, out)
    assert got["OK"], got
    assert out.read_bytes() == data
    assert not list((se_proxy.base / "ns").rglob("in.bin"))  # one-shot: removed once sent


def test_call_proxy_method_storage_queries(se_proxy, tmp_path):
    (se_proxy.storage / "dirac/d").mkdir(parents=True)
    (se_proxy.storage / "dirac/d/f.txt").write_bytes(b"hello")
    rpc = se_proxy.rpc()
    assert rpc.callProxyMethod(SE, "exists", [{"/dirac/d/f.txt": False}], {})["Value"] == \
        {"Successful": {"/dirac/d/f.txt": True}, "Failed": {}}
    assert rpc.callProxyMethod(SE, "getFileSize", [{"/dirac/d/f.txt": False}], {})["Value"][
        "Successful"] == {"/dirac/d/f.txt": 5}
    meta = rpc.callProxyMethod(SE, "getFileMetadata", ["/dirac/d/f.txt"], {})
    assert meta["Value"]["Successful"]["/dirac/d/f.txt"]["Checksum"] == \
        file_adler32(se_proxy.storage / "dirac/d/f.txt")
    listing = rpc.callProxyMethod(SE, "listDirectory", ["/dirac/d"], {})
    assert "/dirac/d/f.txt" in listing["Value"]["Successful"]["/dirac/d"]["Files"]
    removed = rpc.callProxyMethod(SE, "removeFile", [["/dirac/d/f.txt"]], {})
    assert removed["Value"]["Successful"] == {"/dirac/d/f.txt": True}
    assert not (se_proxy.storage / "dirac/d/f.txt").exists()


def test_prepare_file_for_http_then_curl(se_proxy, tmp_path):
    data = os.urandom(2_000_000)
    local = tmp_path / "h.bin"
    local.write_bytes(data)
    lfn = "/dirac/http/h.bin"
    assert se_proxy.put(local, lfn)["OK"]
    res = se_proxy.rpc().prepareFileForHTTP(lfn)
    assert res["OK"], res
    assert res["Value"]["Failed"] == {}
    assert list(res["Value"]["Successful"]) == [lfn]
    assert {"CachePath", "HttpKey", "HttpURL"} <= set(res)
    assert res["HttpURL"] == f"http://127.0.0.1:{se_proxy.http_port}/{res['HttpKey']}"
    out = tmp_path / "curl.bin"
    subprocess.run(["curl", "-sSf", "-o", str(out), res["HttpURL"]], check=True, timeout=60)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    conn = http.client.HTTPConnection("127.0.0.1", se_proxy.http_port, timeout=10)
    conn.request("GET", "/" + res["HttpKey"])
    assert conn.getresponse().status == 401  # single use


def test_prepare_file_for_http_several_and_unknown(se_proxy, tmp_path):
    for name in ("a", "b"):
        (se_proxy.storage / "dirac/m").mkdir(parents=True, exist_ok=True)
        (se_proxy.storage / "dirac/m" / name).write_bytes(name.encode() * 10)
    res = se_proxy.rpc().prepareFileForHTTP(["/dirac/m/a", "/dirac/m/b", "/dirac/m/missing"])
    assert res["OK"], res
    assert set(res["Value"]["Successful"]) == {"/dirac/m/a", "/dirac/m/b"}  # via SE fallback
    assert "/dirac/m/missing" in res["Value"]["Failed"]
    assert "HttpKey" in res
    nothing = se_proxy.rpc().prepareFileForHTTP("/dirac/m/missing")
    assert nothing["OK"] and nothing["Value"]["Successful"] == {}
    assert "HttpKey" not in nothing  # no key for an empty staging
    assert not os.path.exists(nothing["CachePath"])


def test_types_and_error_texts(se_proxy):
    rpc = se_proxy.rpc()
    bad = rpc.callProxyMethod(SE, "exists", "notalist", {})
    assert bad["Message"] == ("Type mismatch in parameter 2 (starting with param 0) "
                              "Received <class 'str'>, expected <class 'list'>")
    bad = rpc.prepareFileForHTTP(42)
    assert bad["Message"] == ("Type mismatch in parameter 0 (starting with param 0) Received "
                              "<class 'int'>, expected [<class 'str'>, <class 'list'>]")
    assert rpc.callProxyMethod(SE, "noSuchMethod", [], {})["Message"] == \
        "Method 'noSuchMethod' isn't implemented!"


def test_https_access_with_the_host_certificate(se_proxy_factory, tmp_path):
    p = se_proxy_factory(HttpsAccess=True)
    (p.storage / "dirac").mkdir()
    (p.storage / "dirac" / "s.bin").write_bytes(b"over TLS" * 1000)
    res = p.rpc().prepareFileForHTTP("/dirac/s.bin")
    assert res["OK"] and res["HttpURL"].startswith(f"https://127.0.0.1:{p.http_port}/")
    out = tmp_path / "s.bin"
    subprocess.run(["curl", "-sSf", "--cacert", str(p.pki.ca_cert), "-o", str(out), res["HttpURL"]],
                   check=True, timeout=60)
    assert out.read_bytes() == b"over TLS" * 1000


def test_http_access_needs_the_http_front_plugged_in(seproxy_service, tmp_path):
    """The handler does not import the HTTP package: the class seproxy serves
    (seproxy.cli.wiring) plugs HttpThread in; the bare class says what is missing."""
    import pytest

    from seproxy.cli import wiring
    from seproxy.errors import ConfigError
    from seproxy.handler.storage_element_proxy import StorageElementProxyHandler
    from seproxy.http.server import HttpThread

    assert wiring.StorageElementProxyHandler.http_server is HttpThread
    assert StorageElementProxyHandler.http_server is None
    options = {"BasePath": str(tmp_path / "cache"), "HttpAccess": True, "HttpPort": 0,
               "HttpHost": "127.0.0.1", "HttpPurgeInterval": 0}
    with pytest.raises(ConfigError, match="HttpAccess is on but this StorageElementProxy handler has no HTTP server"):
        seproxy_service(StorageElementProxyHandler, name="DataManagement/Bare", options=options)
    options["HttpAccess"] = False
    svc = seproxy_service(StorageElementProxyHandler, name="DataManagement/Bare", options=options)
    try:
        assert svc.service.handler_class.state.http_thread is None
    finally:
        svc.service.handler_class.state.stop()
