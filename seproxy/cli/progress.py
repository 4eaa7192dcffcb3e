"""Progress bars of the client commands: one per phase of a transfer, on a terminal only.

A ``put`` has two phases (the upload to the proxy, then the proxy's ``uploadFile`` to
the storage element), a ``get`` two as well (``prepareFile`` on the proxy, then the
download). Byte phases show size, rate and ETA; the proxy's own phases (no byte
count reaches the client) show a ticking elapsed time. Bars are drawn with tqdm (a
dependency) on standard error, only when it is a terminal; :class:`Bars` with
``enabled=False``, a non-terminal, or tqdm missing draws nothing and never fails.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TextIO

Update = Callable[[int], None]


def _tqdm() -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # a broken install: no bar, never a traceback
        return None
    return tqdm


class Bars:
    """Factory of the per-phase bars of one command."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.tqdm = _tqdm() if enabled else None

    @property
    def enabled(self) -> bool:
        return self.tqdm is not None

    @contextlib.contextmanager
    def bytes(self, label: str, total: int | None) -> Iterator[Update | None]:
        """A byte bar (size, rate, ETA when ``total`` is known); yields ``update(done)``."""
        if self.tqdm is None:
            yield None
            return
        with self.tqdm(total=total if total and total > 0 else None, desc=label, unit="B",
                       unit_scale=True, unit_divisor=1024, file=self.stream, leave=True,
                       dynamic_ncols=True) as bar:
            def update(done: int) -> None:
                bar.update(done - bar.n)

            yield update

    @contextlib.contextmanager
    def waiting(self, label: str) -> Iterator[None]:
        """A phase that runs on the proxy: elapsed time, refreshed twice a second."""
        if self.tqdm is None:
            yield
            return
        stop = threading.Event()
        with self.tqdm(total=None, desc=label, bar_format="{desc}: {elapsed} elapsed",
                       file=self.stream, leave=True) as bar:
            ticker = threading.Thread(target=_tick, args=(bar, stop), daemon=True)
            ticker.start()
            try:
                yield
            finally:
                stop.set()
                ticker.join(timeout=2)


def _tick(bar: Any, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        bar.refresh()
