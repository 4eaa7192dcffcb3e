"""Service options: CredentialSource = proxydir, the call time limits, catalogue checks."""

from __future__ import annotations

import os
import shutil
import threading

from seproxy.returnvalues import S_OK

SE = "SE-LOCAL"


def test_proxydir_credentials(se_proxy_factory, tmp_path):
    proxies = tmp_path / "proxies"
    proxies.mkdir()
    p = se_proxy_factory(CredentialSource="proxydir", ProxyDir=str(proxies))
    seen = []
    original = p.state.storage_element
    p.state.storage_element = lambda name, vo, creds: (seen.append(creds), original(name, vo, creds))[1]
    rpc = p.rpc()
    res = rpc.callProxyMethod(SE, "exists", ["/dirac/x"], {})
    assert not res["OK"] and res["Message"] == "No proxy for testuser@dirac_user in the proxy directory"
    placed = proxies / "testuser-dirac_user"
    shutil.copy(p.proxy(), placed)
    os.chmod(placed, 0o644)
    res = rpc.callProxyMethod(SE, "exists", ["/dirac/x"], {})
    assert not res["OK"] and "readable by others" in res["Message"]
    os.chmod(placed, 0o600)
    res = rpc.callProxyMethod(SE, "exists", ["/dirac/x"], {})
    assert res["OK"], res
    assert seen[-1].proxy_path == str(placed) and seen[-1].group == "dirac_user"
    placed.unlink()
    (proxies / "testuser-dirac_user").symlink_to(p.proxy())
    res = rpc.callProxyMethod(SE, "exists", ["/dirac/x"], {})
    assert not res["OK"] and "not a regular file" in res["Message"]


def test_call_time_limit_answers_and_keeps_serving(se_proxy_factory):
    p = se_proxy_factory(CallTimeout=1)
    release = threading.Event()

    class Stuck:
        def exists(self, *args, **kwargs):
            release.wait(60)
            return S_OK({"Successful": {}, "Failed": {}})

    p.state.storage_element = lambda name, vo, creds: Stuck()
    try:
        res = p.rpc().callProxyMethod(SE, "exists", ["/dirac/x"], {})
        assert not res["OK"] and res["Message"] == '1 seconds timeout for "__proxyWrapper" call'
        assert p.rpc().ping()["OK"]
    finally:
        release.set()


def test_prepare_file_for_http_checks_catalogue_size_and_checksum(se_proxy, tmp_path):
    local = tmp_path / "c.txt"
    local.write_bytes(b"original content")
    assert se_proxy.put(local, "/dirac/c.txt")["OK"]
    stored = se_proxy.storage / "dirac" / "c.txt"
    stored.write_bytes(b"0riginal content")  # same size, other bytes
    res = se_proxy.rpc().prepareFileForHTTP("/dirac/c.txt")
    assert res["OK"] and "Checksum mismatch" in res["Value"]["Failed"]["/dirac/c.txt"]
    assert "HttpKey" not in res
    stored.write_bytes(b"short")
    res = se_proxy.rpc().prepareFileForHTTP("/dirac/c.txt")
    assert "Size mismatch" in res["Value"]["Failed"]["/dirac/c.txt"]
