"""The embedded SQLite replica catalogue."""

from __future__ import annotations

import zlib

from seproxy.handler.catalog import CatalogueChain, SQLiteCatalogue, adler32_file, same_adler


def test_sqlite_catalogue_round_trip(tmp_path):
    cat = SQLiteCatalogue(tmp_path / "db" / "catalogue.sqlite")
    assert cat.replicas("/dirac/f") == [] and cat.metadata("/dirac/f") is None
    cat.add_file("/dirac/f", 10, "0a0b0c0d", "SE-A")
    cat.add_file("/dirac/f", 10, "0a0b0c0d", "SE-B")
    assert cat.replicas("/dirac/f") == ["SE-A", "SE-B"]
    assert cat.metadata("/dirac/f") == {"Size": 10, "Checksum": "0a0b0c0d", "ChecksumType": "ADLER32"}
    again = SQLiteCatalogue(tmp_path / "db" / "catalogue.sqlite")  # persisted
    assert again.replicas("/dirac/f") == ["SE-A", "SE-B"]
    again.remove_replica("/dirac/f", "SE-A")
    assert again.replicas("/dirac/f") == ["SE-B"]
    again.remove_replica("/dirac/f", "SE-B")
    assert again.metadata("/dirac/f") is None


def test_chain_first_catalogue_with_replicas_wins(tmp_path):
    first, second = SQLiteCatalogue(tmp_path / "1.db"), SQLiteCatalogue(tmp_path / "2.db")
    second.add_file("/dirac/x", 1, "", "SE-2")
    chain = CatalogueChain([first, second])
    assert chain.replicas("/dirac/x") == ["SE-2"]
    first.add_file("/dirac/x", 1, "", "SE-1")
    assert chain.replicas("/dirac/x") == ["SE-1"]


def test_adler32(tmp_path):
    path = tmp_path / "f"
    data = b"hello world" * 100_000
    path.write_bytes(data)
    assert adler32_file(path, block_size=4096) == f"{zlib.adler32(data):08x}"
    assert same_adler("00ab12cd", "AB12CD")
    assert not same_adler("00ab12cd", "ab12ce")
