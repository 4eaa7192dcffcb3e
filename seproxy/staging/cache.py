"""The StorageElementProxy's local cache: an expiring key register and the staging area.

:class:`ExpiringRegister` has the semantics of DIRAC's ``DictCache`` (add with a
lifetime, ``exists``/``get``/``delete``, ``purgeExpired`` calling a delete function
on each removed value) plus what the HTTP side needs: keys that are *in use* by a
running download are never purged under its feet (their value is deleted when the
last user releases it), and a background purger thread enforces expiry without
waiting for the next request.

:class:`CacheArea` owns the directory tree under ``BasePath``::

    <BasePath>/
      ns/<namespace>/getFile/<name>   staged by prepareFile, removed once sent
      ns/<namespace>/putFile/<name>   uploaded by a client, removed by uploadFile
      tmp/<instance>/<random>.part    uploads being received (renamed when complete)
      httpCache/<instance>/<expiry>-<id>/<files>   prepareFileForHTTP downloads (or HttpCache)
      purge.lock                      flock'ed by the one instance evicting or purging

It enforces high/low watermarks on the bytes held under ``ns/`` by evicting the
least recently used files that no instance is sending or receiving (a shared ``flock``
marks a file in use, the exclusive ``purge.lock`` lets one instance evict at a time),
and cleans its own ``tmp/`` (orphaned partial uploads) and expired or unfinished HTTP
key directories at start-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seproxy import metrics
from seproxy.errors import CacheFullError, KeyInUse
from seproxy.staging.keys import dir_expiry, key_digest

log = logging.getLogger("seproxy.handler.cache")  # the name operators configured before the move


def purgeCacheDirectory(path: str | os.PathLike[str]) -> None:  # noqa: N802 - DIRAC API
    """Remove a cache directory tree (DIRAC API); a missing directory is not an error."""
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class _Entry:
    expires: float
    value: Any
    users: int = 0
    dead: bool = False  # deleted or expired while in use: delete the value on release
    claimed: bool = False  # a single-use download of this entry is running


@dataclass
class Lease:
    """One use of a register entry (see :meth:`ExpiringRegister.acquire`)."""

    key: Any
    entry: _Entry
    released: bool = False
    exclusive: bool = False

    @property
    def value(self) -> Any:
        return self.entry.value


class PeriodicPurger:
    """A daemon thread that calls ``purgeExpired()`` every ``interval`` seconds (the HTTP key
    registers use it); ``_purge_failed(exc)`` decides what a failed round logs."""

    _purger: threading.Thread | None
    _stop: threading.Event
    _purger_name = "seproxy-purger"
    _purger_lock = threading.Lock()  # two start_purger() calls start one thread

    def purgeExpired(self) -> int:  # noqa: N802 - DIRAC's name
        raise NotImplementedError

    def start_purger(self, interval: float = 30.0) -> None:
        """Run :meth:`purgeExpired` every ``interval`` seconds in a daemon thread."""
        with self._purger_lock:
            if self._purger is not None:
                return
            self._stop.clear()
            self._purger = threading.Thread(target=self._purge_loop, args=(interval,),
                                            name=self._purger_name, daemon=True)
            self._purger.start()

    def stop_purger(self) -> None:
        self._stop.set()
        thread, self._purger = self._purger, None
        if thread is not None:
            thread.join(timeout=5)

    def _purge_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.purgeExpired()
            except Exception as exc:  # noqa: BLE001 - the purger must survive a bad round
                self._purge_failed(exc)

    def _purge_failed(self, exc: Exception) -> None:
        log.error("purging expired keys failed", exc_info=exc)


class ExpiringRegister(PeriodicPurger):
    """A thread-safe ``key -> value`` map whose entries expire (DIRAC ``DictCache``).

    ``deleteFunction(value)`` is called for every entry that leaves the register
    through :meth:`delete`, :meth:`purgeExpired` or :meth:`purgeAll` (never while the
    entry is in use: then it is called by the last :meth:`release`).
    """

    _purger_name = "seproxy-register-purger"

    def _purge_failed(self, exc: Exception) -> None:  # a bad delete: logged, next round
        log.error("purging expired cache keys failed", exc_info=exc)

    def __init__(self, deleteFunction: Callable[[Any], None] | None = None,  # noqa: N803
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self._delete_function = deleteFunction
        self._clock = clock
        self._entries: dict[Any, _Entry] = {}
        self._lock = threading.RLock()
        self._released = threading.Condition(self._lock)  # a claim ended
        self._purger: threading.Thread | None = None
        self._stop = threading.Event()

    # -- DictCache API ---------------------------------------------------------------
    def add(self, cKey: Any, validSeconds: float, value: Any = None) -> None:  # noqa: N803
        """Add or replace ``cKey`` for ``validSeconds`` seconds."""
        with self._lock:
            old = self._entries.get(cKey)
            self._entries[cKey] = _Entry(self._clock() + validSeconds, value)
            if old is not None and old.value is not value:
                self._drop(old)

    def exists(self, cKey: Any, validSeconds: float = 0) -> bool:  # noqa: N803
        """True if ``cKey`` is present and still valid ``validSeconds`` from now."""
        return self._live(cKey, validSeconds) is not None

    def get(self, cKey: Any, validSeconds: float = 0) -> Any:  # noqa: N803
        """The value of ``cKey``, or ``None`` if absent or expiring within ``validSeconds``."""
        entry = self._live(cKey, validSeconds)
        return entry.value if entry is not None else None

    def delete(self, cKey: Any) -> None:  # noqa: N803
        """Remove ``cKey`` and delete its value (later, if it is in use)."""
        with self._lock:
            entry = self._entries.pop(cKey, None)
        if entry is not None:
            self._drop(entry)

    def getKeys(self, validSeconds: float = 0) -> list[Any]:  # noqa: N802,N803
        with self._lock:
            limit = self._clock() + validSeconds
            return [k for k, e in self._entries.items() if e.expires > limit]

    def getDict(self) -> dict[Any, Any]:  # noqa: N802
        with self._lock:
            now = self._clock()
            return {k: e.value for k, e in self._entries.items() if e.expires > now}

    def purgeExpired(self, expiredInSeconds: float = 0) -> int:  # noqa: N802,N803
        """Remove the entries expired (or expiring within ``expiredInSeconds``); their count."""
        with self._lock:
            limit = self._clock() + expiredInSeconds
            gone = [k for k, e in self._entries.items() if e.expires <= limit]
            entries = [self._entries.pop(k) for k in gone]
        for entry in entries:
            self._drop(entry)
        return len(entries)

    def purgeAll(self, useLock: bool = True) -> None:  # noqa: N802,N803
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        for entry in entries:
            self._drop(entry)

    def __len__(self) -> int:
        return len(self.getKeys())

    # -- in-use accounting (HTTP downloads) --------------------------------------------
    def lookup(self, key: str, *, exclusive: bool = False, wait: float = 0.0) -> Lease | None:
        """The HTTP front's look-up by the key itself (indexed by :func:`key_digest`);
        ``exclusive`` claims it for one download (see :meth:`claim`)."""
        if exclusive:
            return self.claim(key_digest(key), wait)
        return self.acquire(key_digest(key))

    def acquire(self, cKey: Any) -> Lease | None:  # noqa: N803
        """Mark a valid ``cKey`` in use and return its lease (``None`` if absent or expired).

        While leased, the entry's value is not deleted even if the key expires or is
        deleted; the last :meth:`release` deletes it then.
        """
        with self._lock:
            entry = self._live(cKey, 0)
            if entry is None:
                return None
            entry.users += 1
            return Lease(cKey, entry)

    def claim(self, cKey: Any, wait: float = 0.0) -> Lease | None:  # noqa: N803
        """Like :meth:`acquire`, but exclusive: one claim of a key at a time (the check and
        the mark are one atomic step). A claim held by someone else is waited for up to
        ``wait`` seconds (the holder may be just finishing, and may consume the key:
        then ``None``); after that :class:`KeyInUse` is raised."""
        deadline = self._clock() + wait
        with self._released:
            while True:
                entry = self._live(cKey, 0)
                if entry is None:
                    return None
                if not entry.claimed:
                    entry.claimed = True
                    entry.users += 1
                    return Lease(cKey, entry, exclusive=True)
                left = deadline - self._clock()
                if left <= 0:
                    raise KeyInUse(cKey)
                self._released.wait(left)

    def release(self, lease: Lease, *, consume: bool = False) -> None:
        """End a use; ``consume`` also removes the key (a single-use download is done)."""
        entry = lease.entry
        with self._lock:
            if lease.released:
                return
            lease.released = True
            entry.users -= 1
            if lease.exclusive:
                entry.claimed = False
                self._released.notify_all()
            if consume and self._entries.get(lease.key) is entry:
                del self._entries[lease.key]
                entry.dead = True
            delete_now = entry.dead and entry.users <= 0
        if delete_now:
            self._call_delete(entry.value)

    # -- background purger -------------------------------------------------------------
    # -- internals ---------------------------------------------------------------------
    def _live(self, key: Any, valid_seconds: float) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= self._clock() + valid_seconds:
                if entry.expires <= self._clock():
                    del self._entries[key]
                    self._drop(entry)
                return None
            return entry

    def _drop(self, entry: _Entry) -> None:
        """Delete ``entry``'s value now, or when its last user releases it."""
        with self._lock:
            entry.dead = True
            if entry.users > 0:
                return
        self._call_delete(entry.value)

    def _call_delete(self, value: Any) -> None:
        if self._delete_function is None or value is None:
            return
        try:
            self._delete_function(value)
        except Exception:  # a failing delete must not break the caller
            log.exception("cache delete function failed for %r", value)


class CacheArea:
    """The directories under ``BasePath``, with watermarks and LRU eviction."""

    def __init__(self, base_path: str | os.PathLike[str], *, http_cache: str | os.PathLike[str] | None = None,
                 high_watermark: int = 0, low_watermark: int = 0, instance: str = "") -> None:
        self.base = Path(os.path.abspath(base_path))
        self.ns_root = self.base / "ns"
        # per-instance partial uploads and HTTP keys: instances sharing one BasePath
        # never clean up each other's work at start-up
        self.tmp_root = self.base / "tmp"
        self.tmp = self.tmp_root / instance if instance else self.tmp_root
        self.instance = instance
        #: the root every instance's key directories are under (``HttpCache``, else
        #: ``<BasePath>/httpCache``); this instance writes into ``http_cache``
        self.http_root = Path(os.path.abspath(http_cache)) if http_cache else self.base / "httpCache"
        self.http_cache = self.http_root / instance if instance else self.http_root
        self.high_watermark = high_watermark  # bytes; 0 = no limit
        self.low_watermark = low_watermark or int(high_watermark * 0.8)
        self._in_use: dict[str, int] = {}
        self._lock = threading.Lock()
        for directory in (self.base, self.ns_root, self.tmp_root, self.tmp, self.http_root, self.http_cache):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        self.lock_file = self.base / "purge.lock"

    @contextlib.contextmanager
    def purge_lock(self, *, blocking: bool = True) -> Iterator[bool]:
        """The cache's purge lock (``flock`` on ``<BasePath>/purge.lock``): one instance at a
        time evicts or purges. Yields whether it is held (always True when ``blocking``)."""
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                     0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # drops the lock

    # -- start-up ------------------------------------------------------------------------
    def clean_startup(self) -> dict[str, int]:
        """Remove orphaned partial uploads and this instance's HTTP key directories whose
        key has expired or was never issued (a download key outlives a restart: any
        instance may still serve it)."""
        removed = {"tmp": 0, "http": 0}
        for child in list(self.tmp.iterdir()):
            _remove(child)
            removed["tmp"] += 1
        now = time.time()
        for child in list(self.http_cache.iterdir()):
            expiry = dir_expiry(child.name)
            if expiry is not None and expiry >= now and child.is_dir() and not child.is_symlink():
                continue
            _remove(child)
            removed["http"] += 1
        if any(removed.values()):
            log.info("start-up cleanup removed %(tmp)d partial uploads and %(http)d HTTP key "
                     "directories", removed)
        return removed

    def purge_stale(self, max_age: float, *, now: float | None = None) -> int:
        """Remove staged ``getFile``/``putFile`` copies older than ``max_age`` seconds that
        are not in use (a client interrupted between staging and fetching); their count."""
        limit = (time.time() if now is None else now) - max_age
        removed = 0
        for path, st in self._files():
            if self.tmp_root in path.parents or st.st_mtime > limit or self.is_in_use(path):
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
                metrics.EVICTIONS.labels("stale").inc()
                log.info("removed %s: staged %d s ago and never fetched", path,
                         int(limit + max_age - st.st_mtime))
        return removed

    # -- in-use marks (files being sent or uploaded) ----------------------------------------
    @contextlib.contextmanager
    def in_use(self, path: str | os.PathLike[str]) -> Iterator[None]:
        """Mark a file as being sent or received: no instance evicts it meanwhile (a
        shared ``flock`` on the file tells other instances, a count tells this one)."""
        key = os.fspath(path)
        with self._lock:
            self._in_use[key] = self._in_use.get(key, 0) + 1
        fd = -1
        with contextlib.suppress(OSError):
            fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            if fd >= 0:
                os.close(fd)
            with self._lock:
                count = self._in_use.get(key, 1) - 1
                if count:
                    self._in_use[key] = count
                else:
                    self._in_use.pop(key, None)

    def is_in_use(self, path: str | os.PathLike[str]) -> bool:
        """In use here, or (shared ``flock`` held) by another instance."""
        with self._lock:
            if os.fspath(path) in self._in_use:
                return True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # -- watermarks --------------------------------------------------------------------------
    def usage(self) -> int:
        """Bytes held in the staging namespaces and in partial uploads."""
        return sum(st.st_size for _, st in self._files())

    def usage_and_count(self) -> tuple[int, int]:
        """(bytes, files) held in the staging namespaces and in partial uploads."""
        files = self._files()
        return sum(st.st_size for _, st in files), len(files)

    def make_room(self, needed: int = 0) -> int:
        """Ensure ``needed`` more bytes fit under the high watermark; the bytes evicted.

        When usage plus ``needed`` exceeds the high watermark, files not in use are
        removed, least recently used first, until usage plus ``needed`` is at most the
        low watermark. Raises :class:`CacheFullError` if that cannot be reached under
        the high watermark.
        """
        if self.high_watermark <= 0:
            return 0
        with self.purge_lock():  # one instance evicts at a time; the others then see its result
            return self._make_room(needed)

    def _make_room(self, needed: int) -> int:
        files = self._files()
        usage = sum(st.st_size for _, st in files)
        if usage + max(needed, 0) <= self.high_watermark:
            return 0
        target = max(self.low_watermark - max(needed, 0), 0)
        evicted = 0
        for path, st in sorted(files, key=lambda item: max(item[1].st_atime, item[1].st_mtime)):
            if usage <= target:
                break
            if self.tmp_root in path.parents or self.is_in_use(path):
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                usage -= st.st_size
                evicted += st.st_size
                metrics.EVICTIONS.labels("watermark").inc()
                log.info("cache eviction: removed %s (%d bytes)", path, st.st_size)
        if usage + max(needed, 0) > self.high_watermark:
            raise CacheFullError(f"cache full: {usage} bytes in use, {needed} more requested, "
                                 f"high watermark {self.high_watermark}")
        return evicted

    def _files(self) -> list[tuple[Path, os.stat_result]]:
        found: list[tuple[Path, os.stat_result]] = []
        for root in (self.ns_root, self.tmp_root):
            for dirpath, _dirs, names in os.walk(root):
                for name in names:
                    path = Path(dirpath, name)
                    with contextlib.suppress(FileNotFoundError):
                        st = path.lstat()
                        found.append((path, st))
        return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


#: The process-wide HTTP key register (DIRAC: ``gRegister``): key digest -> key directory.
gRegister = ExpiringRegister(purgeCacheDirectory)  # noqa: N816 - DIRAC name
