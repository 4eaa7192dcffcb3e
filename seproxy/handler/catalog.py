"""Replica look-up for ``prepareFileForHTTP``: a small catalogue interface.

DIRAC resolved LFNs through its file catalogue and DataManager. seproxy offers:

* :class:`SQLiteCatalogue` — an embedded replica catalogue (LFN -> size, checksum,
  SEs) in one SQLite file; ``seproxy put`` registers into it;
* :class:`StorageElementFallback` — asks configured storage elements, in order,
  whether they hold the LFN (for files never registered);
* :class:`CatalogueChain` — the first catalogue that knows replicas wins.

:func:`fetch_lfns` downloads LFNs into a directory the way DIRAC's
``DataManager.getFile`` did and returns its answer shape: ``S_OK({"Successful":
{lfn: localPath}, "Failed": {lfn: reason}})``. Each download lands under a
temporary name, is checked against the catalogue's size and Adler-32 checksum when
known, and only then renamed to its final name.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from seproxy.errors import PathError, StorageError
from seproxy.localfs import file_adler32 as adler32_file
from seproxy.returnvalues import unwrap
from seproxy.staging.namespace import local_name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    lfn TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    checksum TEXT NOT NULL DEFAULT '',
    checksum_type TEXT NOT NULL DEFAULT 'ADLER32',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    lfn TEXT NOT NULL REFERENCES files(lfn) ON DELETE CASCADE,
    se TEXT NOT NULL,
    PRIMARY KEY (lfn, se)
);
"""


def same_adler(a: str, b: str) -> bool:
    """Compare two Adler-32 hex strings, ignoring case and leading zeros (DIRAC style)."""
    return a.lower().lstrip("0") == b.lower().lstrip("0")


class ReplicaCatalogue(Protocol):
    def replicas(self, lfn: str) -> list[str]: ...
    def metadata(self, lfn: str) -> dict[str, Any] | None: ...


class SQLiteCatalogue:
    """LFN -> (size, checksum, SEs) in one SQLite database file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def add_file(self, lfn: str, size: int, checksum: str, se: str,
                 checksum_type: str = "ADLER32") -> None:
        """Register (or update) an LFN and add ``se`` as one of its replicas."""
        with self._lock, contextlib.closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO files(lfn, size, checksum, checksum_type, created) VALUES (?,?,?,?,?) "
                "ON CONFLICT(lfn) DO UPDATE SET size=excluded.size, checksum=excluded.checksum, "
                "checksum_type=excluded.checksum_type",
                (lfn, int(size), checksum, checksum_type, time.time()))
            db.execute("INSERT OR IGNORE INTO replicas(lfn, se) VALUES (?, ?)", (lfn, se))

    def remove_replica(self, lfn: str, se: str) -> None:
        with self._lock, contextlib.closing(self._connect()) as db, db:
            db.execute("DELETE FROM replicas WHERE lfn = ? AND se = ?", (lfn, se))
            db.execute("DELETE FROM files WHERE lfn = ? AND NOT EXISTS "
                       "(SELECT 1 FROM replicas WHERE replicas.lfn = files.lfn)", (lfn,))

    def replicas(self, lfn: str) -> list[str]:
        with contextlib.closing(self._connect()) as db:
            rows = db.execute("SELECT se FROM replicas WHERE lfn = ? ORDER BY rowid", (lfn,))
            return [row[0] for row in rows]

    def metadata(self, lfn: str) -> dict[str, Any] | None:
        with contextlib.closing(self._connect()) as db:
            row = db.execute("SELECT size, checksum, checksum_type FROM files WHERE lfn = ?",
                             (lfn,)).fetchone()
        if row is None:
            return None
        return {"Size": row[0], "Checksum": row[1], "ChecksumType": row[2]}


class StorageElementFallback:
    """Finds replicas by asking storage elements, in order, whether the LFN exists."""

    def __init__(self, se_names: Sequence[str], open_se: Callable[[str], Any]) -> None:
        self.se_names = list(se_names)
        self.open_se = open_se

    def replicas(self, lfn: str) -> list[str]:
        found = []
        for name in self.se_names:
            try:
                result = self.open_se(name).exists(lfn)
            except Exception:  # noqa: BLE001 - an unusable SE is simply not a replica
                continue
            if unwrap(result).ok and result["Value"].get("Successful", {}).get(lfn) is True:
                found.append(name)
        return found

    def metadata(self, lfn: str) -> dict[str, Any] | None:
        return None


class CatalogueChain:
    """Asks each catalogue in turn; the first with replicas answers."""

    def __init__(self, catalogues: Iterable[ReplicaCatalogue]) -> None:
        self.catalogues = list(catalogues)

    def replicas(self, lfn: str) -> list[str]:
        for catalogue in self.catalogues:
            found = catalogue.replicas(lfn)
            if found:
                return found
        return []

    def metadata(self, lfn: str) -> dict[str, Any] | None:
        for catalogue in self.catalogues:
            meta = catalogue.metadata(lfn)
            if meta is not None:
                return meta
        return None


def fetch_lfns(lfns: str | Sequence[str], dest_dir: str | os.PathLike[str], *,
               catalogue: ReplicaCatalogue, open_se: Callable[[str], Any],
               tmp_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Download ``lfns`` into ``dest_dir``; ``{"Successful": {lfn: path}, "Failed": {lfn: why}}``."""
    if isinstance(lfns, str):
        lfns = [lfns]
    successful: dict[str, str] = {}
    failed: dict[str, str] = {}
    for lfn in lfns:
        try:
            successful[lfn] = _fetch_one(lfn, Path(dest_dir), catalogue, open_se, Path(tmp_dir))
        except (StorageError, PathError, OSError) as exc:
            failed[lfn] = str(exc)
    return {"Successful": successful, "Failed": failed}


def _fetch_one(lfn: str, dest_dir: Path, catalogue: ReplicaCatalogue,
               open_se: Callable[[str], Any], tmp_root: Path) -> str:
    name = local_name(lfn)
    replicas = catalogue.replicas(lfn)
    if not replicas:
        raise StorageError("No such file or directory: no replica found in any catalogue")
    meta = catalogue.metadata(lfn) or {}
    reasons = []
    for se_name in replicas:
        work = Path(os.path.abspath(tmp_root)) / f"fetch-{os.urandom(8).hex()}"
        work.mkdir(parents=True)
        try:
            result = open_se(se_name).getFile(lfn, localPath=str(work))
            if not unwrap(result).ok:
                reasons.append(f"{se_name}: {result.get('Message')}")
                continue
            value = result["Value"]
            if lfn in value.get("Failed", {}):
                reasons.append(f"{se_name}: {value['Failed'][lfn]}")
                continue
            got = work / name
            _verify(got, meta)
            final = dest_dir / name
            os.replace(got, final)
            return str(final)
        except (StorageError, OSError) as exc:
            reasons.append(f"{se_name}: {exc}")
        finally:
            _rmtree_quiet(work)
    raise StorageError("Failed to get file from any replica: " + "; ".join(reasons))


def _verify(path: Path, meta: dict[str, Any]) -> None:
    size = path.stat().st_size
    if "Size" in meta and int(meta["Size"]) != size:
        raise StorageError(f"Size mismatch: catalogue says {meta['Size']} bytes, got {size}")
    checksum = meta.get("Checksum")
    if checksum and str(meta.get("ChecksumType", "ADLER32")).upper() in ("ADLER32", "AD"):
        local = adler32_file(path)
        if not same_adler(local, checksum):
            raise StorageError(f"Checksum mismatch: catalogue says {checksum}, got {local}")


def _rmtree_quiet(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
