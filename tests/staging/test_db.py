"""The state database: SQLite and MariaDB through one layer, schema versions, connection loss,
single-use key claims shared by instances."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from seproxy.errors import StateError
from seproxy.handler.catalog import DatabaseCatalogue
from seproxy.staging import db
from seproxy.staging.keyregister import BUSY, CLAIMED, CONSUMED, DatabaseClaims, FileClaims


@pytest.fixture(params=["sqlite", "mariadb"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return db.sqlite_url(tmp_path / "state.sqlite")
    return request.getfixturevalue("mariadb_url")


def test_schema_created_with_version_and_catalogue_round_trip(store_url):
    store = db.StateStore(store_url)
    assert store.version() == db.SCHEMA_VERSION
    cat = DatabaseCatalogue(store)
    lfn = "/dirac/" + "long/" * 100 + "f"  # 500+ characters
    cat.add_file(lfn, 10, "0a0b0c0d", "SE-A")
    cat.add_file(lfn, 11, "0a0b0c0e", "SE-B")
    again = DatabaseCatalogue(db.StateStore(store_url))  # a second instance on the same database
    assert sorted(again.replicas(lfn)) == ["SE-A", "SE-B"]
    assert again.metadata(lfn) == {"Size": 11, "Checksum": "0a0b0c0e", "ChecksumType": "ADLER32"}
    again.remove_replica(lfn, "SE-A")
    again.remove_replica(lfn, "SE-B")
    assert cat.replicas(lfn) == [] and cat.metadata(lfn) is None
    # bound parameters only: an LFN full of SQL is just a string
    evil = "/dirac/x'); DROP TABLE files; --"
    cat.add_file(evil, 1, "", "SE-A")
    assert cat.replicas(evil) == ["SE-A"]


def test_a_version_1_sqlite_catalogue_is_migrated_in_place(tmp_path):
    path = tmp_path / "catalogue.sqlite"
    old = sqlite3.connect(path)  # the table layout of the catalogue before the version table
    old.executescript("""
        CREATE TABLE files (lfn TEXT PRIMARY KEY, size INTEGER NOT NULL,
            checksum TEXT NOT NULL DEFAULT '', checksum_type TEXT NOT NULL DEFAULT 'ADLER32',
            created REAL NOT NULL);
        CREATE TABLE replicas (lfn TEXT NOT NULL REFERENCES files(lfn) ON DELETE CASCADE,
            se TEXT NOT NULL, PRIMARY KEY (lfn, se));
        INSERT INTO files VALUES ('/dirac/old', 5, 'abc', 'ADLER32', 0);
        INSERT INTO replicas VALUES ('/dirac/old', 'SE-OLD');
    """)
    old.commit()
    old.close()
    store = db.StateStore(db.sqlite_url(path))
    assert store.version() == db.SCHEMA_VERSION == 2
    assert DatabaseCatalogue(store).replicas("/dirac/old") == ["SE-OLD"]
    assert DatabaseClaims(store).claim("d" * 64, "me", time.time() + 5, time.time() + 60) == CLAIMED


def test_newer_schema_is_refused(tmp_path):
    url = db.sqlite_url(tmp_path / "s.sqlite")
    store = db.StateStore(url)
    store.run("test", lambda conn: conn.execute(db.schema_table.update().values(version=99)))
    with pytest.raises(Exception, match="schema version 99, newer"):
        db.StateStore(url)


@pytest.fixture(params=["files", "database"])
def claims(request, tmp_path, store_url):
    if request.param == "files":
        return lambda: FileClaims(tmp_path / "claims")
    return lambda: DatabaseClaims(db.StateStore(store_url))


def test_single_use_claim_one_winner_across_instances(claims):
    instances = [claims() for _ in range(3)]
    digest, now = "e" * 64, time.time()
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def grab(index: int) -> None:
        barrier.wait()
        outcomes.append(instances[index % 3].claim(digest, f"i{index}", now + 30, now + 600))

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [BUSY] * 5 + [CLAIMED]
    instances[0].consume(digest, now + 600)
    assert {inst.claim(digest, "late", now + 30, now + 600) for inst in instances} == {CONSUMED}


def test_released_and_lapsed_claims_can_be_taken_again(claims):
    first, second = claims(), claims()
    now = time.time()
    assert first.claim("a" * 64, "one", now + 30, now + 600) == CLAIMED
    assert second.claim("a" * 64, "two", now + 30, now + 600) == BUSY
    first.release("a" * 64, "one")  # interrupted download: a resume may claim it
    assert second.claim("a" * 64, "two", now + 30, now + 600) == CLAIMED
    # a claim whose instance died (kill -9) lapses at its "until"
    assert first.claim("b" * 64, "dead", now - 1, now + 600) == CLAIMED
    assert second.claim("b" * 64, "two", now + 30, now + 600) == CLAIMED
    # purge drops claims of expired keys
    assert first.claim("c" * 64, "one", now + 30, now - 1) == CLAIMED
    assert second.purge(now) >= 1
    assert second.claim("c" * 64, "two", now + 30, now + 600) == CLAIMED


def test_mariadb_cut_and_restored_clean_errors_then_recovery(mariadb, mariadb_url, caplog):
    store = db.StateStore(mariadb_url, retry_delays=(0.05, 0.1))
    cat = DatabaseCatalogue(store)
    cat.add_file("/dirac/cut", 3, "", "SE-A")
    mariadb.stop()
    try:
        for _ in range(3):
            with pytest.raises(StateError) as err:
                cat.replicas("/dirac/cut")
            message = str(err.value)
            assert "\n" not in message and "unavailable" in message and "looking up replicas" in message
            assert ":***@" in message or "***" in message  # never the password
        with pytest.raises(StateError):
            DatabaseClaims(store).claim("f" * 64, "me", time.time() + 5, time.time() + 60)
    finally:
        mariadb.start()
    assert cat.replicas("/dirac/cut") == ["SE-A"]  # the same store: no restart
    warnings = [r.getMessage() for r in caplog.records if r.name == "seproxy.staging.db"]
    assert sum("unavailable" in w for w in warnings) == 1  # one line when it went away
    assert any("reachable again" in w for w in warnings)


def test_a_running_downloads_claim_is_renewed_and_only_its_owner_renews(claims):
    first, second = claims(), claims()
    now = time.time()
    assert first.claim("9" * 64, "one", now - 1, now + 600) == CLAIMED  # about to lapse ...
    assert first.renew("9" * 64, "one", now + 30)  # ... but the download still runs
    assert second.claim("9" * 64, "two", now + 30, now + 600) == BUSY
    assert not second.renew("9" * 64, "two", now + 60)  # not its claim
    first.consume("9" * 64, now + 600)
    assert not first.renew("9" * 64, "one", now + 60)


def test_register_keeps_renewing_the_claims_of_running_downloads(tmp_path):
    from seproxy.staging.cache import CacheArea
    from seproxy.staging.keyregister import SignedKeyRegister
    from seproxy.staging.keys import KeySigner
    from tests.conftest import wait_for

    cache = CacheArea(tmp_path / "cache", instance="n1")
    claims = FileClaims(cache.http_root / ".claims")
    register = SignedKeyRegister(KeySigner(tmp_path / "secret"), claims, cache, "n1",
                                 lifetime=600, claim_hold=0.3)
    staged = register.staging_dir()
    (staged / "f").write_bytes(b"x")
    key, _ = register.issue(staged, "00" * 20)
    lease = register.lookup(key, exclusive=True)
    marker = cache.http_root / ".claims" / lease.grant.digest
    first_until = float(marker.read_text().split()[1])
    try:
        assert wait_for(lambda: float(marker.read_text().split()[1]) > first_until + 0.5, 10, 0.02)
    finally:
        register.release(lease)
        register.stop_purger()
    assert not marker.exists()  # released: a resume may claim it
