"""``ServiceReactor``: several services in one process, graceful stop on SIGTERM/SIGINT.

Each service listens on its own port with its own pool (PROTOCOL.md 7.1).
``serve_forever()`` installs SIGTERM/SIGINT handlers (main thread only), waits,
then stops every service: no new connections, running requests finish.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from seproxy.config import Config
from seproxy.rpc.server.context import ActionServer
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.service import Service

log = logging.getLogger("seproxy.rpc.reactor")


class ServiceReactor:
    """``handler_classes`` (service name -> class) override the configured handlers;
    ``handlers`` and ``actions`` are given to every :class:`Service` (see there)."""

    def __init__(self, cfg: Config, names: Sequence[str], *, handler_classes: dict[str, type] | None = None,
                 host: str | None = None, handlers: Mapping[str, type[RequestHandler]] | None = None,
                 actions: Mapping[str, ActionServer] | None = None) -> None:
        classes = handler_classes or {}
        self.services = [Service(cfg, name, handler_class=classes.get(name), host=host, handlers=handlers,
                                 actions=actions) for name in names]
        self._stop = threading.Event()

    def start(self) -> ServiceReactor:
        started: list[Service] = []
        try:
            for service in self.services:
                started.append(service.start())
        except BaseException:
            for service in started:
                service.stop(timeout=5)
            raise
        return self

    def request_stop(self, signum: int | None = None, _frame: Any = None) -> None:
        if signum is not None:
            log.warning("Signal %s received: stopping %d service(s)", signum, len(self.services))
        self._stop.set()

    def serve_forever(self, install_signals: bool = True, stop_timeout: float = 60.0) -> None:
        """Start (if needed), run until a signal or ``request_stop()``, then stop gracefully."""
        previous = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self.request_stop)
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop(stop_timeout)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop(self, timeout: float = 60.0) -> None:
        for service in self.services:
            service.stop(timeout)

    def __enter__(self) -> ServiceReactor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
