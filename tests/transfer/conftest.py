"""Fixtures for the transfer tests: a real plain-TCP transport pair on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from seproxy.rpc.transport import connect, listen


@pytest.fixture
def transport_pair() -> Iterator[tuple[Any, Any]]:
    """(client side, server side) of one real loopback TCP connection (``dip``)."""
    listener = listen("dip", "127.0.0.1", 0, cfg=None)
    try:
        client = connect("dip", "127.0.0.1", listener.port, cfg=None, timeout=10)
        server = listener.accept(timeout=10)
        server.handshake(10)
        client.settimeout(30)
        server.settimeout(30)
        yield client, server
        client.close()
        server.close()
    finally:
        listener.close()


class Background:
    """Run a callable in a thread; ``result()`` joins and re-raises its exception."""

    def __init__(self, func: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(func,), daemon=True)
        self._thread.start()

    def _run(self, func: Callable[[], Any]) -> None:
        try:
            self._value = func()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._error = exc

    def result(self, timeout: float = 60) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background side did not finish"
        if self._error is not None:
            raise self._error
        return self._value


@pytest.fixture
def background() -> type[Background]:
    return Background
