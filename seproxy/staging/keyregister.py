"""The HTTP key register every instance shares: signed keys, key directories, single-use claims.

:class:`SignedKeyRegister` is what the handler issues keys from and what the HTTP front
looks them up in. Nothing lives in one process's memory:

* a key is verified by its MAC (:class:`~seproxy.staging.keys.KeySigner`), so every
  instance with the same key secret accepts it;
* its files are in ``<HTTP cache root>/<instance>/<expiry>-<id>/`` on the shared
  filesystem, so every instance with the same ``BasePath``/``HttpCache`` finds them;
* a single-use key is *claimed* by the GET that serves it, atomically through shared
  state: one ``INSERT``/``UPDATE`` of a row in the state database
  (:class:`DatabaseClaims`, when a database server is configured) or an ``O_EXCL``
  marker file on the shared filesystem (:class:`FileClaims`). A second GET meanwhile
  waits a little (the first may consume the key: then 401) and then gets
  :class:`KeyInUse` (409). A complete download *consumes* the key; an interrupted one
  frees it (a resume with ``Range`` may claim it again). A running download's claim is
  renewed every third of ``claim_hold`` seconds; a claim whose instance died
  mid-download lapses after ``claim_hold`` seconds, and another instance may serve it.

Expired key directories and claims are purged by whichever instance gets the cache's
purge lock (one purger at a time, :meth:`~seproxy.staging.cache.CacheArea.purge_lock`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from seproxy.errors import KeyInUse, SeproxyError
from seproxy.staging import db
from seproxy.staging.cache import CacheArea, PeriodicPurger, purgeCacheDirectory
from seproxy.staging.keys import KeyGrant, KeySigner, dir_expiry

log = logging.getLogger("seproxy.staging.keyregister")

CLAIMED, BUSY, CONSUMED = "claimed", "busy", "consumed"
#: seconds between two attempts of a GET waiting for another GET's claim to end
_CLAIM_POLL = 0.1


class Claims(Protocol):
    """Single-use claims shared by the instances (indexed by the key's digest)."""

    def claim(self, digest: str, owner: str, until: float, expires: float) -> str:
        """Take the key for one download: :data:`CLAIMED`, :data:`BUSY` or :data:`CONSUMED`."""
        ...

    def release(self, digest: str, owner: str) -> None: ...
    def renew(self, digest: str, owner: str, until: float) -> bool:
        """Extend a claim this owner holds (a download still running); False if it lost it."""
        ...

    def consume(self, digest: str, expires: float) -> None: ...
    def purge(self, now: float) -> int: ...


class DatabaseClaims:
    """Claims as rows of ``http_keys`` in the state database (one atomic statement each)."""

    def __init__(self, store: db.StateStore) -> None:
        self.store = store

    def claim(self, digest: str, owner: str, until: float, expires: float) -> str:
        table = db.http_keys_table
        now = time.time()

        def take(conn: sa.Connection) -> str:
            taken = conn.execute(
                sa.update(table).where(table.c.digest == digest)
                .where(sa.or_(table.c.state == "free",
                              sa.and_(table.c.state == CLAIMED, table.c.until < now)))
                .values(state=CLAIMED, owner=owner, until=until)).rowcount
            if taken:
                return CLAIMED
            row = conn.execute(sa.select(table.c.state).where(table.c.digest == digest)).first()
            return (CONSUMED if row[0] == CONSUMED else BUSY) if row is not None else ""

        try:  # the first GET of a key inserts its row: the primary key makes that atomic
            self.store.run("claiming an HTTP key", lambda conn: conn.execute(sa.insert(table).values(
                digest=digest, state=CLAIMED, owner=owner, until=until, expires=expires)))
            return CLAIMED
        except sa_exc.IntegrityError:
            pass
        return self.store.run("claiming an HTTP key", take) or BUSY

    def release(self, digest: str, owner: str) -> None:
        table = db.http_keys_table
        self.store.run("releasing an HTTP key", lambda conn: conn.execute(
            sa.update(table).where(table.c.digest == digest).where(table.c.state == CLAIMED)
            .where(table.c.owner == owner).values(state="free")))

    def renew(self, digest: str, owner: str, until: float) -> bool:
        table = db.http_keys_table
        return bool(self.store.run("renewing an HTTP key claim", lambda conn: conn.execute(
            sa.update(table).where(table.c.digest == digest).where(table.c.state == CLAIMED)
            .where(table.c.owner == owner).values(until=until)).rowcount))

    def consume(self, digest: str, expires: float) -> None:
        table = db.http_keys_table
        self.store.run("consuming an HTTP key", lambda conn: conn.execute(
            sa.update(table).where(table.c.digest == digest).values(state=CONSUMED)))

    def purge(self, now: float) -> int:
        table = db.http_keys_table
        return self.store.run("purging HTTP keys", lambda conn: conn.execute(
            sa.delete(table).where(table.c.expires < now)).rowcount)


class FileClaims:
    """Claims as marker files ``<root>/<digest>`` on the shared filesystem.

    A claim is created with ``O_CREAT | O_EXCL`` (one winner), holds ``until expires
    owner``; consuming atomically replaces it by a ``consumed`` marker (``rename``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _read(self, path: Path) -> list[str]:
        try:
            return path.read_text(encoding="ascii", errors="replace").split()
        except FileNotFoundError:
            return []

    def claim(self, digest: str, owner: str, until: float, expires: float) -> str:
        marker = self.root / digest
        for _ in range(3):
            try:
                fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                fields = self._read(marker)
                if fields[:1] == [CONSUMED]:
                    return CONSUMED
                if len(fields) >= 2 and _float(fields[1]) >= time.time():
                    return BUSY
                if len(fields) < 2 and _age(marker) < 5:
                    return BUSY  # being written right now
                # a claim whose holder died (or "free" after an interrupted download):
                # move it aside atomically; only one contender's rename succeeds
                with contextlib.suppress(FileNotFoundError):
                    aside = self.root / f".{digest}.{secrets.token_hex(6)}"
                    os.rename(marker, aside)
                    os.unlink(aside)
                continue
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(f"{CLAIMED} {until:.3f} {expires:.0f} {owner}\n")
            return CLAIMED
        return BUSY

    def release(self, digest: str, owner: str) -> None:
        marker = self.root / digest
        fields = self._read(marker)
        if fields[:1] == [CLAIMED] and fields[3:4] == [owner]:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()

    def renew(self, digest: str, owner: str, until: float) -> bool:
        marker = self.root / digest
        fields = self._read(marker)
        if fields[:1] != [CLAIMED] or fields[3:4] != [owner]:
            return False
        tmp = self.root / f".{digest}.{secrets.token_hex(6)}"
        tmp.write_text(f"{CLAIMED} {until:.3f} {fields[2]} {owner}\n", encoding="ascii")
        os.replace(tmp, marker)
        return True

    def consume(self, digest: str, expires: float) -> None:
        tmp = self.root / f".{digest}.{secrets.token_hex(6)}"
        tmp.write_text(f"{CONSUMED} 0 {expires:.0f}\n", encoding="ascii")
        os.replace(tmp, self.root / digest)

    def purge(self, now: float) -> int:
        removed = 0
        for entry in os.scandir(self.root):
            fields = self._read(Path(entry.path))
            stale_temp = entry.name.startswith(".") and _age(Path(entry.path)) > 60
            if stale_temp or (len(fields) >= 3 and _float(fields[2]) < now):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        return removed


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class KeyLookup(Protocol):
    """What the HTTP front needs of a key register (this module's or DIRAC's ``gRegister``)."""

    def lookup(self, key: str, *, exclusive: bool = False, wait: float = 2.0) -> Any: ...
    def release(self, lease: Any, *, consume: bool = False) -> None: ...
    def start_purger(self, interval: float = 30.0) -> None: ...
    def stop_purger(self) -> None: ...


@dataclass
class KeyLease:
    """One download's hold on a key (from :meth:`SignedKeyRegister.lookup`)."""

    grant: KeyGrant
    value: str            #: the key directory (absolute path)
    claimed: bool = False
    released: bool = False


class SignedKeyRegister(PeriodicPurger):
    """Issues signed keys into a shared HTTP cache and looks them up for the HTTP front."""

    _purger_name = "seproxy-key-purger"

    def __init__(self, signer: KeySigner, claims: Claims, cache: CacheArea, instance: str, *,
                 lifetime: float, claim_hold: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.signer = signer
        self.claims = claims
        self.cache = cache
        self.root = cache.http_root
        self.instance = instance
        self.lifetime = lifetime
        self.claim_hold = claim_hold
        self.owner = f"{instance}:{os.getpid()}:{secrets.token_hex(4)}"
        self._clock = clock
        self._purger: threading.Thread | None = None
        self._stop = threading.Event()
        self._active: dict[int, KeyLease] = {}  # claimed leases, renewed while downloads run
        self._active_lock = threading.Lock()
        self._keeper: threading.Thread | None = None

    # -- the handler's side ------------------------------------------------------------------
    def staging_dir(self) -> Path:
        """A fresh private directory to stage files into before a key exists for them."""
        path = self.cache.http_cache / f".staging-{secrets.token_hex(12)}"
        path.mkdir(mode=0o700)
        return path

    def issue(self, staged: Path, namespace: str) -> tuple[str, Path]:
        """Sign a key for the files in ``staged`` and move them to the key's directory."""
        key, grant = self.signer.issue(self.instance, namespace, self.lifetime)
        final = self.root / grant.directory
        os.rename(staged, final)
        return key, final

    # -- the HTTP front's side -----------------------------------------------------------------
    def lookup(self, key: str, *, exclusive: bool = False, wait: float = 2.0) -> KeyLease | None:
        """A lease on a valid key (``None``: forged, expired, consumed or its files gone).

        ``exclusive`` claims a single-use key for one download (waiting up to ``wait``
        seconds for another download of it to end); :class:`KeyInUse` if it does not."""
        grant = self.signer.verify(key)
        if grant is None:
            return None
        directory = self.root / grant.directory
        lease = KeyLease(grant, str(directory))
        if exclusive:
            deadline = time.monotonic() + wait
            while True:
                outcome = self.claims.claim(grant.digest, self.owner,
                                            self._clock() + self.claim_hold, grant.expires)
                if outcome == CLAIMED:
                    lease.claimed = True
                    self._keep(lease)
                    break
                if outcome == CONSUMED:
                    return None
                if time.monotonic() >= deadline:
                    raise KeyInUse("A download with this key is in progress")
                time.sleep(_CLAIM_POLL)  # another instance's download: poll the shared claim
        if not directory.is_dir():
            self.release(lease)
            return None
        return lease

    def release(self, lease: KeyLease, *, consume: bool = False) -> None:
        """End a download; ``consume`` uses the key up and removes its files."""
        if lease.released:
            return
        lease.released = True
        with self._active_lock:
            self._active.pop(id(lease), None)
        try:
            if consume:
                self.claims.consume(lease.grant.digest, lease.grant.expires)
            elif lease.claimed:
                self.claims.release(lease.grant.digest, self.owner)
        finally:
            if consume:
                purgeCacheDirectory(lease.value)

    # -- claims of running downloads ------------------------------------------------------------
    def _keep(self, lease: KeyLease) -> None:
        """Renew ``lease``'s claim every third of ``claim_hold`` while the download runs, so
        that only a dead instance's claims lapse (long downloads keep theirs)."""
        with self._active_lock:
            self._active[id(lease)] = lease
            if self._keeper is None or not self._keeper.is_alive():
                self._keeper = threading.Thread(target=self._keep_loop, name="seproxy-key-claims",
                                                daemon=True)
                self._keeper.start()

    def _keep_loop(self) -> None:
        while not self._stop.wait(max(self.claim_hold / 3, 0.05)):
            with self._active_lock:
                leases = list(self._active.values())
            for lease in leases:
                try:
                    if not self.claims.renew(lease.grant.digest, self.owner,
                                             self._clock() + self.claim_hold):
                        log.warning("HTTP key claim of a running download was lost (%s...)",
                                    lease.grant.digest[:8])
                except (SeproxyError, OSError) as exc:
                    log.warning("renewing an HTTP key claim failed: %s", exc)

    # -- expiry ------------------------------------------------------------------------------
    def purgeExpired(self) -> int:  # the register's name (DIRAC's DictCache)
        """Remove expired key directories of every instance and expired claims (if no
        other instance is purging right now); the number of directories removed."""
        now = self._clock()
        with self.cache.purge_lock(blocking=False) as mine:
            if not mine:
                return 0
            removed = 0
            for instance_dir in _subdirs(self.root):
                for entry in _subdirs(instance_dir):
                    expiry = dir_expiry(entry.name)
                    if expiry is not None and expiry < now:
                        purgeCacheDirectory(entry)
                        removed += 1
            self.claims.purge(now)
        return removed

    def _purge_failed(self, exc: Exception) -> None:
        if not isinstance(exc, (SeproxyError, OSError)):  # a bug: the thread ends, as before
            raise exc
        log.warning("purging expired HTTP keys failed: %s", exc)  # the database is down: next time


def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(path)
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")]
    except OSError:
        return []
