"""``seproxy serve -c site.cfg`` inside a DIRAC installation (real DIRAC 9.1 Configuration
Servers and ProxyManager on MariaDB, real DIRAC 9.1 clients): site.cfg names only the CS
servers and this host's credentials; everything else comes from the CS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from seproxy.config import Config
from seproxy.rpc.client import RPCClient
from tests.conftest import REPO_ROOT, wait_for
from tests.fixtures.cfgtext import cfg_text
from tests.fixtures.services import start_serve, stop_serve
from tests.storage.helpers import file_section

pytestmark = pytest.mark.interop

PLUGINS = REPO_ROOT / "tests" / "data" / "plugins"  # the Recording test plugin (README there)
UNAUTHORIZED = "Unauthorized query ( 1111 : Unauthorized query)"  # as a DIRAC 9.1 client shows it


def _se(path: Path, section: str = "File", **extra: str) -> dict:
    """A storage element with one File-like protocol section rooted at ``path``."""
    return {"BackendType": "File", "AccessProtocols": "file", "WriteProtocols": "file",
            section: file_section(str(path), **extra)}


def _serve(site, tmp_path: Path, *args: str):
    """Start seproxy on ``site``; (process, DISET URL, local copy path, log path)."""
    copy, log = tmp_path / "cs-copy.cfg", tmp_path / "serve.log"
    site_cfg = tmp_path / "site.cfg"
    site_cfg.write_text(site.seproxy_cfg(local_copy=copy))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(PLUGINS)])}
    proc, lines = start_serve(tmp_path / "data", "-c", str(site_cfg), *args, env=env, log=log)
    url = next(line.split()[1] for line in lines if line.strip().startswith("DISET"))
    cs_line = next(line for line in lines if line.strip().startswith("CS "))
    assert any(cs_line.endswith(f"from {server}") for server in site.cs_urls), lines
    return proc, url, copy, log


def _exists(se: str, lfn: str) -> dict:
    return {"method": "callProxyMethod", "args": [se, "exists", [lfn], {}]}


def _rpc(url: str, call: dict) -> dict:
    return {"rpc": url, **call}


def _value(outcome) -> dict:
    return outcome.unwrap()


@pytest.fixture
def cs_site(dirac_site_factory, tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    return dirac_site_factory(servers=2, proxy_manager=False, extra={
        "DIRAC": {"Configuration": {"RefreshTime": 2}},
        "Resources": {"StorageElements": {"SE-CS": _se(storage)}},
    }), storage


def test_users_bans_and_storage_elements_follow_the_cs_and_outages_are_ridden_out(cs_site, pki, tmp_path):
    site, _storage = cs_site
    proc, url, copy, log = _serve(site, tmp_path)
    try:
        alice = site.client(site.user_proxy("alice"))
        bob = site.client(site.user_proxy("bob"))
        # alice and bob exist only in the CS
        first, unknown_se = alice.run(_rpc(url, _exists("SE-CS", "/dirac/a")), _rpc(url, _exists("SE-NEW", "/x")))
        assert _value(first)["OK"] and _value(first)["Value"] == {"Failed": {}, "Successful": {"/dirac/a": False}}
        assert not _value(unknown_se)["OK"]

        # ban alice, add a storage element: both take effect at the next refresh
        new_storage = tmp_path / "new-storage"
        new_storage.mkdir()
        changes = [("/Registry/Users/alice/Suspended", "dirac")]
        for key, value in _se(new_storage).items():
            items = value.items() if isinstance(value, dict) else [(None, value)]
            changes += [("/".join(filter(None, ("/Resources/StorageElements/SE-NEW", key, sub))), str(v))
                        for sub, v in items]
        site.commit_all(changes)
        assert wait_for(lambda: "SE-NEW" in copy.read_text(), timeout=60, interval=0.1), \
            log.read_text()[-3000:]  # the local copy is written by the refresh that took it
        banned, = alice.run(_rpc(url, _exists("SE-CS", "/dirac/a")))
        assert not _value(banned)["OK"] and _value(banned)["Message"] == UNAUTHORIZED
        new_se, = bob.run(_rpc(url, _exists("SE-NEW", "/dirac/b")))
        assert _value(new_se)["OK"], _value(new_se)

        # every CS server down: seproxy keeps serving with the last copy
        for server in site.servers:
            server.stop()
        assert wait_for(lambda: "No Configuration Server answers" in log.read_text(), timeout=60,
                        interval=0.1)
        still, refused = bob.run(_rpc(url, _exists("SE-NEW", "/dirac/b"))), alice.run(
            _rpc(url, _exists("SE-CS", "/dirac/a")))
        assert _value(still[0])["OK"]
        assert _value(refused[0])["Message"] == UNAUTHORIZED
        assert log.read_text().count("No Configuration Server answers") == 1  # once per outage
        assert proc.poll() is None
    finally:
        stop_serve(proc)


def test_refresh_configuration_forces_a_refresh(dirac_site_factory, pki, tmp_path):
    """RefreshTime is an hour: only refreshConfiguration brings the ban and the new group
    property (prepareFile needs ProdManager by the service's CS Authorization section)."""
    site = dirac_site_factory(servers=1, proxy_manager=False, extra={
        "DIRAC": {"Configuration": {"RefreshTime": 3600}},
        "Systems": {"DataManagement": {"Services": {"StorageElementProxy": {
            "Authorization": {"prepareFile": "ProdManager"}}}}}})
    proc, url, copy, _log = _serve(site, tmp_path)
    try:
        carol = site.client(site.user_proxy("carol"))
        bob = site.client(site.user_proxy("bob"))
        admin = site.client(pki.proxy("dirac_admin"))
        call = _rpc(url, _exists("SE-NONE", "/dirac/c"))  # authenticated-only ("whoami" is for all)
        prepare = _rpc(url, {"method": "prepareFile", "args": ["SE-NONE", "/dirac/b"]})
        before, = carol.run(call)
        assert _value(before)["Message"].startswith("SE.isValid: Failed to create")  # authorised, no SE
        assert _value(bob.run(prepare)[0])["Message"] == UNAUTHORIZED  # no ProdManager yet
        site.commit_all([("/Registry/Users/carol/Suspended", "dirac"),
                         ("/Registry/Groups/dirac_user/Properties", "NormalUser, ProdManager")])
        refreshed = admin.rpc(url, "refreshConfiguration", False)
        assert refreshed["OK"], refreshed
        assert "Suspended = dirac" in copy.read_text()
        banned = _value(carol.run(call)[0])
        assert not banned["OK"] and banned["Message"] == UNAUTHORIZED
        allowed = _value(bob.run(prepare)[0])
        assert not allowed["OK"] and allowed["Message"].startswith("SE.isValid: Failed to create"), allowed
        site.servers[0].stop()  # a forced refresh with no server: DIRAC's answer, still serving
        failed = admin.rpc(url, "refreshConfiguration", False)
        assert not failed["OK"] and failed["Message"].startswith(f"Reason(s):\n\t{site.cs_urls[0]}: ")
        assert _value(carol.run(call)[0])["Message"] == UNAUTHORIZED
    finally:
        stop_serve(proc)


def test_no_server_and_no_copy_refuses_to_start_with_one_line(pki, tmp_path):
    site_cfg = tmp_path / "site.cfg"
    site_cfg.write_text(cfg_text({"DIRAC": {
        "Configuration": {"Servers": "dips://127.0.0.1:1/Configuration/Server",
                          "LocalCopy": tmp_path / "none.cfg"},
        "Security": {"CertFile": pki.host_cert, "KeyFile": pki.host_key, "CALocation": pki.ca_dir}}}))
    done = subprocess.run([sys.executable, "-m", "seproxy", "serve", "--data-dir", str(tmp_path / "d"),
                           "-c", str(site_cfg)], check=False, capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR ")]
    expected = ("ERROR No Configuration Server answered (dips://127.0.0.1:1/Configuration/Server)"
                f" and no local copy at {tmp_path / 'none.cfg'}")
    assert errors == [expected]
    assert "Traceback" not in done.stderr


# ----------------------------------------------------------------------------- ProxyManager


@pytest.fixture
def pm_site(dirac_site_factory, tmp_path):
    storage, record = tmp_path / "storage", tmp_path / "record.jsonl"
    storage.mkdir()
    site = dirac_site_factory(servers=1, proxy_manager=True, extra={
        "Systems": {"DataManagement": {"Services": {"StorageElementProxy": {
            "CredentialSource": "ProxyManager", "ProxyLifetime": 15600}}}},
        "Resources": {"StorageElements": {"SE-REC": _se(storage, "Recording", PluginName="Recording",
                                                        RecordFile=str(record))}},
    })
    return site, storage, record


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_storage_calls_act_with_the_callers_own_proxy_from_the_proxy_manager(pm_site, pki, tmp_path):
    site, storage, record = pm_site
    for user in ("alice", "bob"):
        assert site.upload_proxy(user)["OK"]
    proc, url, _copy, log = _serve(site, tmp_path)
    try:
        # alice: uploadFile then prepareFile through seproxy with DIRAC's client
        alice = site.client(site.user_proxy("alice"))
        local = tmp_path / "a.txt"
        local.write_bytes(b"alice's data\n" * 100)
        lfn = "/dirac/user/alice/a.txt"
        sent, uploaded, prepared, received = alice.run(
            {"transfer": url, "method": "sendFile", "args": [str(local), "putFile/a.txt"]},
            _rpc(url, {"method": "uploadFile", "args": ["SE-REC", lfn]}),
            _rpc(url, {"method": "prepareFile", "args": ["SE-REC", lfn]}),
            {"transfer": url, "method": "receiveFile", "args": [str(tmp_path / "back.txt"), "getFile/a.txt"]})
        for outcome in (sent, uploaded, prepared, received):
            assert _value(outcome)["OK"], _value(outcome)
        assert (storage / lfn.lstrip("/")).read_bytes() == local.read_bytes()
        assert (tmp_path / "back.txt").read_bytes() == local.read_bytes()
        entries = _records(record)
        assert [e["op"] for e in entries] == ["put", "get"]
        for entry in entries:
            assert entry["dn"] == site.users["alice"] and entry["group"] == "dirac_user"
            assert 15600 - 300 <= entry["seconds_left"] <= 1.5 * 15600  # DIRAC gives up to 1.5x
            assert entry["in_memory"] and entry["has_key"] and entry["proxy_path"] is None
            assert entry["environ_proxy"] is None
        assert site.proxy_downloads(site.users["alice"]) == 1

        # carol has no stored proxy: DIRAC's message, nothing reaches storage
        carol = site.client(site.user_proxy("carol"))
        refused = _value(carol.run(_rpc(url, _exists("SE-REC", "/dirac/user/carol/x")))[0])
        assert not refused["OK"]
        assert f"{site.users['carol']} has no proxy registered" in refused["Message"]
        assert len(_records(record)) == 2

        # 1,000 calls of one user: one proxy download
        bob_dn = site.users["bob"]
        client_cfg = Config.from_text(cfg_text({"DIRAC": {"Security": {"CALocation": pki.ca_dir}}}))
        bob_proxy = site.user_proxy("bob")
        assert site.proxy_downloads(bob_dn) == 0
        with RPCClient(url, proxyLocation=str(bob_proxy), config=client_cfg, reuseConnection=True) as client:
            for index in range(1000):
                answer = client.callProxyMethod("SE-REC", "exists", [f"/dirac/user/bob/{index}"], {})
                assert answer["OK"], answer
        assert site.proxy_downloads(bob_dn) == 1
        bob_entries = [e for e in _records(record) if e["url"].startswith(str(storage / "dirac/user/bob"))]
        assert len(bob_entries) == 1000 and {e["dn"] for e in bob_entries} == {bob_dn}
    finally:
        stop_serve(proc)
    assert "Traceback" not in log.read_text()


def test_two_users_in_parallel_never_get_each_others_proxy(pm_site, pki, tmp_path):
    site, _storage, record = pm_site
    for user in ("alice", "bob"):
        assert site.upload_proxy(user)["OK"]
    proc, url, _copy, _log = _serve(site, tmp_path)
    failures: list[str] = []

    def work(user: str) -> None:
        client = site.client(site.user_proxy(user))
        calls = []
        for index in range(15):
            local = tmp_path / f"{user}-{index}.txt"
            local.write_text(f"{user} {index}\n")
            calls += [{"transfer": url, "method": "sendFile", "args": [str(local), f"putFile/{local.name}"]},
                      _rpc(url, {"method": "uploadFile", "args": ["SE-REC", f"/dirac/user/{user}/{local.name}"]}),
                      _rpc(url, _exists("SE-REC", f"/dirac/user/{user}/{local.name}"))]
        for outcome in client.run(*calls):
            if not _value(outcome)["OK"]:
                failures.append(f"{user}: {_value(outcome)}")

    try:
        threads = [threading.Thread(target=work, args=(user,)) for user in ("alice", "bob")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop_serve(proc)
    assert failures == []
    entries = _records(record)
    assert len(entries) == 2 * 15 * 2
    for entry in entries:
        owner = entry["url"].split("/dirac/user/", 1)[1].split("/", 1)[0]
        assert entry["dn"] == site.users[owner], entry
