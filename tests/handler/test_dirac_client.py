"""Real DIRAC clients (PyPI DIRAC in their own venvs) against seproxy's StorageElementProxy.

DIRAC 9.1's raw ``RPCClient``/``TransferClient`` calls in the Proxy plugin's order;
``prepareFileForHTTP`` then ``curl``; ping/whoami. ``StorageElement`` with ``UseProxy``
(seproxy's DIRAC extension, no patching of DIRAC): ``test_dirac_plugin.py``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest

from tests.handler.conftest import SE

pytestmark = pytest.mark.interop


def test_dirac9_raw_calls_in_proxy_plugin_order(se_proxy, dirac9_client, tmp_path):
    url = se_proxy.svc.url
    client = dirac9_client.with_(proxy=se_proxy.proxy(), encoding="json")
    local = tmp_path / "raw.txt"
    local.write_bytes(b"raw DISET calls\n" * 1000)
    lfn = "/dirac/raw/raw.txt"
    out = tmp_path / "back.txt"
    outs = client.run(
        {"transfer": url, "method": "sendFile", "args": [str(local), "putFile/raw.txt"]},
        {"rpc": url, "method": "uploadFile", "args": [SE, lfn]},
        {"rpc": url, "method": "callProxyMethod", "args": [SE, "getFileSize", [{lfn: False}], {}]},
        {"rpc": url, "method": "prepareFile", "args": [SE, lfn]},
        {"transfer": url, "method": "receiveFile", "args": [str(out), "getFile/raw.txt"]},
        {"transfer": url, "method": "receiveFile", "args": [str(out) + ".2", "getFile/raw.txt"]},
        {"rpc": url, "method": "callProxyMethod", "args": [SE, "__class__", [], {}]},
    )
    sent, uploaded, size, prepared, received, again, evil = (o.unwrap() for o in outs)
    assert sent["OK"], sent
    assert uploaded == {"OK": True, "Value": 16000, "rpcStub": uploaded["rpcStub"]} or \
        (uploaded["OK"] and uploaded["Value"] == 16000)
    assert size["Value"] == {"Failed": {}, "Successful": {lfn: 16000}}
    assert prepared["OK"] and prepared["Value"] is None
    assert received["OK"] and out.read_bytes() == local.read_bytes()
    assert not again["OK"] and again["Message"] == "File raw.txt does not exist"  # one-shot cache
    assert not evil["OK"] and evil["Message"] == "Method '__class__' isn't implemented!"


def test_dirac9_prepare_file_for_http_then_curl(se_proxy, dirac9_client, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    (se_proxy.storage / "dirac/h").mkdir(parents=True)
    (se_proxy.storage / "dirac/h/f.bin").write_bytes(data)
    client = dirac9_client.with_(proxy=se_proxy.proxy())
    res = client.rpc(se_proxy.svc.url, "prepareFileForHTTP", "/dirac/h/f.bin")
    assert res["OK"], res
    assert res["Value"]["Successful"].keys() == {"/dirac/h/f.bin"}
    out = tmp_path / "curl.bin"
    subprocess.run(["curl", "-sSf", "-o", str(out), res["HttpURL"]], check=True, timeout=60)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_dirac8_operator_ping_and_whoami(se_proxy, dirac8_client):
    client = dirac8_client.with_(proxy=se_proxy.proxy())
    ping, who = (o.unwrap() for o in client.run(
        {"rpc": se_proxy.svc.url, "method": "ping", "args": []},
        {"rpc": se_proxy.svc.url, "method": "whoami", "args": []}))
    assert ping["OK"] and ping["Value"]["name"] == "DataManagement/StorageElementProxy"
    assert who["OK"] and who["Value"]["username"] == "testuser" and who["Value"]["group"] == "dirac_user"
