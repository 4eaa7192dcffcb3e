"""Replica look-up for ``prepareFileForHTTP``: a small catalogue interface.

DIRAC resolved LFNs through its file catalogue and DataManager. seproxy offers:

* :class:`DatabaseCatalogue` — the replica catalogue (LFN -> size, checksum, SEs) in
  the state database (:mod:`seproxy.staging.db`: one SQLite file by default, or the
  MariaDB/MySQL database several instances share; :class:`SQLiteCatalogue` opens a
  file); ``uploadFile`` registers into it;
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

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from seproxy.errors import PathError, StorageError
from seproxy.localfs import file_adler32 as adler32_file
from seproxy.returnvalues import unwrap
from seproxy.staging import db
from seproxy.staging.db import StateStore
from seproxy.staging.namespace import local_name


def same_adler(a: str, b: str) -> bool:
    """Compare two Adler-32 hex strings, ignoring case and leading zeros (DIRAC style)."""
    return a.lower().lstrip("0") == b.lower().lstrip("0")


class ReplicaCatalogue(Protocol):
    def replicas(self, lfn: str) -> list[str]: ...
    def metadata(self, lfn: str) -> dict[str, Any] | None: ...


class DatabaseCatalogue:
    """LFN -> (size, checksum, SEs) in the state database (:mod:`seproxy.staging.db`):
    SQLite for one instance, MariaDB/MySQL shared by several."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add_file(self, lfn: str, size: int, checksum: str, se: str,
                 checksum_type: str = "ADLER32") -> None:
        """Register (or update) an LFN and add ``se`` as one of its replicas."""
        files, replicas = db.files_table, db.replicas_table
        values = {"size": int(size), "checksum": checksum, "checksum_type": checksum_type}

        def write(conn: sa.Connection) -> None:
            if not conn.execute(sa.update(files).where(files.c.lfn == lfn).values(**values)).rowcount:
                conn.execute(sa.insert(files).values(lfn=lfn, created=time.time(), **values))
            known = conn.execute(sa.select(replicas.c.se).where(replicas.c.lfn == lfn)
                                 .where(replicas.c.se == se)).first()
            if known is None:
                conn.execute(sa.insert(replicas).values(lfn=lfn, se=se))

        try:
            self.store.run("registering a replica", write)
        except sa_exc.IntegrityError:  # another instance registered the same LFN meanwhile
            self.store.run("registering a replica", write)

    def remove_replica(self, lfn: str, se: str) -> None:
        files, replicas = db.files_table, db.replicas_table

        def remove(conn: sa.Connection) -> None:
            conn.execute(sa.delete(replicas).where(replicas.c.lfn == lfn).where(replicas.c.se == se))
            if conn.execute(sa.select(replicas.c.se).where(replicas.c.lfn == lfn)).first() is None:
                conn.execute(sa.delete(files).where(files.c.lfn == lfn))

        self.store.run("removing a replica", remove)

    def replicas(self, lfn: str) -> list[str]:
        replicas = db.replicas_table
        query = sa.select(replicas.c.se).where(replicas.c.lfn == lfn)
        return self.store.run("looking up replicas", lambda conn: [row[0] for row in conn.execute(query)])

    def metadata(self, lfn: str) -> dict[str, Any] | None:
        files = db.files_table
        query = sa.select(files.c.size, files.c.checksum, files.c.checksum_type).where(files.c.lfn == lfn)
        row = self.store.run("reading file metadata", lambda conn: conn.execute(query).first())
        if row is None:
            return None
        return {"Size": row[0], "Checksum": row[1], "ChecksumType": row[2]}


class SQLiteCatalogue(DatabaseCatalogue):
    """The catalogue in one SQLite file (the embedded default)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        super().__init__(db.StateStore(db.sqlite_url(path)))


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
