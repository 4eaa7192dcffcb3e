"""Three StorageElementProxy instances on one BasePath: any instance finishes any flow.

Each instance has its own InstanceName, DISET and HTTP ports; they share the cache
(``BasePath``), hence the key secret file and the HTTP cache, and the state database:
the embedded SQLite (single-use claims as marker files) or a MariaDB server.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os

import pytest

from seproxy.staging.keys import KeySigner
from tests.conftest import wait_for

LFN = "/dirac/multi/f.bin"


@pytest.fixture(params=["sqlite", "mariadb"])
def three(request, se_proxy_factory):
    options = {}
    if request.param == "mariadb":
        options["Database"] = request.getfixturevalue("mariadb_url")
    return [se_proxy_factory(InstanceName=f"node{i}", **options) for i in range(3)]


def get(port: int, key: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/" + key)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_key_from_a_served_by_b_once_then_refused_everywhere(three, tmp_path):
    a, b, c = three
    data = os.urandom(3_000_000)
    local = tmp_path / "f.bin"
    local.write_bytes(data)
    assert a.put(local, LFN)["OK"]
    prepared = a.rpc().prepareFileForHTTP(LFN)
    assert prepared["OK"], prepared
    key = prepared["HttpKey"]
    assert prepared["HttpURL"].endswith(f":{a.http_port}/{key}")
    assert a.state.register.signer.verify(key).directory.startswith("node0/")
    status, body = get(b.http_port, key)
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    for other in (c, b, a):  # single use, on every instance
        assert get(other.http_port, key)[0] == 401
    # the files go with the key when B's handler releases it, just after the last byte it sent
    assert wait_for(lambda: not os.path.exists(prepared["CachePath"]), 10, 0.02)


def test_each_instance_serves_a_key_of_the_others(three, tmp_path):
    local = tmp_path / "g.bin"
    local.write_bytes(b"g" * 100_000)
    assert three[0].put(local, "/dirac/multi/g.bin")["OK"]
    for issuer, server in ((0, 2), (1, 0), (2, 1)):
        prepared = three[issuer].rpc().prepareFileForHTTP("/dirac/multi/g.bin")
        assert get(three[server].http_port, prepared["HttpKey"]) == (200, b"g" * 100_000)


def test_forged_expired_and_foreign_keys_are_401(three, tmp_path):
    a, b, c = three
    local = tmp_path / "h.bin"
    local.write_bytes(b"h" * 1000)
    assert a.put(local, "/dirac/multi/h.bin")["OK"]
    key = a.rpc().prepareFileForHTTP("/dirac/multi/h.bin")["HttpKey"]
    raw = bytearray(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
    raw[20] ^= 0x40  # inside the expiry: a forged longer lifetime
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    same_secret = a.state.register.signer
    expired, _ = same_secret.issue("node0", "00" * 20, -5)
    foreign, _ = KeySigner(tmp_path / "other-site.secret").issue("node0", "00" * 20, 600)
    for bad in (forged, expired, foreign, key[:-2]):
        assert get(b.http_port, bad)[0] == 401
        assert get(c.http_port, bad)[0] == 401
    assert get(c.http_port, key) == (200, b"h" * 1000)  # the genuine key was not used up


def test_upload_and_download_finish_on_other_instances(three, tmp_path):
    a, b, c = three
    data = os.urandom(500_000)
    local = tmp_path / "u.bin"
    local.write_bytes(data)
    sent = a.transfer().sendFile(str(local), "putFile/u.bin")  # sendFile on A ...
    assert sent["OK"], sent
    assert b.rpc().uploadFile("SE-LOCAL", "/dirac/multi/u.bin")["OK"]  # ... uploadFile on B
    assert (a.storage / "dirac/multi/u.bin").read_bytes() == data
    assert c.state.catalogue.replicas("/dirac/multi/u.bin") == ["SE-LOCAL"]  # one catalogue
    assert b.rpc().prepareFile("SE-LOCAL", "/dirac/multi/u.bin")["OK"]  # prepareFile on B ...
    out = tmp_path / "back.bin"
    got = c.transfer().receiveFile(str(out), "getFile/u.bin")  # ... receiveFile on C
    assert got["OK"], got
    assert out.read_bytes() == data


def test_expired_key_directories_of_any_instance_purged_by_one_purger(three):
    a, b, c = three
    stale = a.state.cache.http_cache / "1000000000-0123456789abcdef0123456789abcdef"
    stale.mkdir()
    (stale / "f").write_bytes(b"x")
    with b.state.cache.purge_lock() as held:  # B purges right now: C leaves it alone
        assert held
        assert c.state.register.purgeExpired() == 0
        assert stale.exists()
    assert c.state.register.purgeExpired() == 1
    assert not stale.exists()


def test_files_in_use_on_one_instance_are_not_evicted_by_another(three, tmp_path):
    a, b, _ = three
    local = tmp_path / "e.bin"
    local.write_bytes(b"e" * 1000)
    assert a.transfer().sendFile(str(local), "putFile/e.bin")["OK"]
    staged = next(a.state.cache.ns_root.glob("*/putFile/e.bin"))
    b.state.cache.high_watermark, b.state.cache.low_watermark = 500, 100
    with a.state.cache.in_use(staged):  # A is uploading it to storage
        with pytest.raises(OSError, match="cache full"):
            b.state.cache.make_room(0)
        assert staged.exists()
    assert b.state.cache.make_room(0) == 1000  # no longer in use: evicted
    assert not staged.exists()


def test_database_cut_and_restored_under_running_instances(se_proxy_factory, mariadb, mariadb_url,
                                                           tmp_path):
    a, b = (se_proxy_factory(InstanceName=f"db{i}", Database=mariadb_url) for i in range(2))
    local = tmp_path / "d.bin"
    local.write_bytes(b"d" * 5000)
    assert a.put(local, "/dirac/db/d.bin")["OK"]
    before = a.rpc().prepareFileForHTTP("/dirac/db/d.bin")["HttpKey"]
    password = mariadb_url.split(":")[2].split("@")[0]
    mariadb.stop()
    try:
        down = a.rpc().prepareFileForHTTP("/dirac/db/d.bin")
        assert not down["OK"]
        assert "unavailable" in down["Message"] and "\n" not in down["Message"]
        assert password not in down["Message"]
        assert get(b.http_port, before)[0] == 503  # the single-use claim cannot be taken
        assert a.put(local, "/dirac/db/e.bin")["OK"]  # stored; registered once the database is back
        assert b.rpc().ping()["OK"]  # the services keep serving
    finally:
        mariadb.start()
    assert get(b.http_port, before) == (200, b"d" * 5000)  # recovered without a restart
    again = b.rpc().prepareFileForHTTP("/dirac/db/e.bin")  # found on the SE (fallback)
    assert again["OK"] and get(a.http_port, again["HttpKey"]) == (200, b"d" * 5000)


def test_a_single_use_key_feeds_one_download_across_instances(three):
    a, b, c = three
    data = os.urandom(48 << 20)  # more than the socket buffers hold: B's send blocks on us
    (a.storage / "dirac/multi").mkdir(parents=True, exist_ok=True)
    (a.storage / "dirac/multi/big.bin").write_bytes(data)  # found through the SE fallback
    key = a.rpc().prepareFileForHTTP("/dirac/multi/big.bin")["HttpKey"]
    slow = http.client.HTTPConnection("127.0.0.1", b.http_port, timeout=60)
    try:
        slow.request("GET", "/" + key)
        first = slow.getresponse()  # B claimed the key: headers sent, body pending
        assert first.status == 200
        assert get(c.http_port, key)[0] == 409  # C: another instance's download is running
        assert hashlib.sha256(first.read()).digest() == hashlib.sha256(data).digest()
    finally:
        slow.close()
    assert wait_for(lambda: get(c.http_port, key)[0] == 401, 10, 0.05)  # used up by B's download


def test_serve_with_an_unreachable_database_stops_with_one_error_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import free_port
    from tests.fixtures.services import REPO_ROOT, SEPROXY_SECTION

    url = f"mysql+pymysql://seproxy:hunter2secret@127.0.0.1:{free_port()}/seproxy"
    done = subprocess.run(
        [sys.executable, "-m", "seproxy", "serve", "--data-dir", str(tmp_path / "data"),
         "-o", f"{SEPROXY_SECTION}/Port=0", "-o", f"{SEPROXY_SECTION}/HttpPort=0",
         "-o", f"{SEPROXY_SECTION}/Database={url}"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR ")]
    assert len(errors) == 1 and "unavailable" in errors[0] and "Can't connect" in errors[0]
    assert "Traceback" not in done.stderr and "hunter2secret" not in done.stderr + done.stdout
