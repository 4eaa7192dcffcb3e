"""The instance guard: one running StorageElementProxy per ``BasePath`` and ``InstanceName``.

A service takes an exclusive ``flock`` on ``<BasePath>/instance-<InstanceName>.lock``
before its start-up clean-up (which removes the partial uploads and HTTP key
directories of a *previous* run of that instance) and keeps it until it stops. A
second process asking for the same lock is refused with :class:`InstanceRunning`,
whose message names the running instance (pid, URL, start time, as written into
the lock file by its holder), before it has removed anything.

Inside one process the lock is counted: a service re-initialised in place (the new
state is built before the old one is stopped) shares it, and only the first holder
runs the clean-up. The lock dies with its process, so a crash leaves nothing stale.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
import threading
from pathlib import Path

from seproxy.errors import ConfigError


class InstanceRunning(ConfigError):
    """Another process runs this BasePath + InstanceName."""


_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, holders in this process)
_guard = threading.Lock()


def lock_path(base_path: str | os.PathLike[str], instance: str) -> Path:
    return Path(os.path.abspath(base_path)) / f"instance-{instance}.lock"


def describe(path: Path) -> str:
    """The running holder of ``path`` as written into it (best effort)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    parts = [f"pid {info['pid']} on {info.get('host', '?')}"] if info.get("pid") else []
    if info.get("url"):
        parts.append(str(info["url"]))
    if info.get("started"):
        parts.append(f"started {info['started']}")
    return ", ".join(parts) or "details unknown"


class InstanceLock:
    """The held lock of one instance; :meth:`release` (or process exit) frees it."""

    def __init__(self, base_path: str | os.PathLike[str], instance: str) -> None:
        self.path = lock_path(base_path, instance)
        self.instance = instance
        self.first = False
        self._released = False
        with _guard:
            held = _held.get(str(self.path))
            if held is not None:
                _held[str(self.path)] = (held[0], held[1] + 1)
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InstanceRunning(
                    f"seproxy instance {instance!r} is already running on BasePath "
                    f"{self.path.parent} ({describe(self.path)}); stop it first, or give this "
                    "one another InstanceName or BasePath") from None
            _held[str(self.path)] = (fd, 1)
            self.first = True

    def record(self, url: str = "") -> None:
        """Write who holds the lock (read by :func:`describe` in a refused process)."""
        if not self.first:
            return
        info = {"pid": os.getpid(), "host": socket.gethostname(), "url": url,
                "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
        with _guard:
            held = _held.get(str(self.path))
            if held is None:
                return
            os.ftruncate(held[0], 0)
            os.pwrite(held[0], json.dumps(info).encode(), 0)

    def release(self) -> None:
        with _guard:
            if self._released:
                return
            self._released = True
            held = _held.get(str(self.path))
            if held is None:
                return
            fd, count = held
            if count > 1:
                _held[str(self.path)] = (fd, count - 1)
                return
            del _held[str(self.path)]
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock


def refuse_if_running(base_path: str | os.PathLike[str], instance: str) -> None:
    """Raise :class:`InstanceRunning` if another process holds the instance's lock (a
    check before binding ports, so the refusal names the running instance)."""
    InstanceLock(base_path, instance).release()
