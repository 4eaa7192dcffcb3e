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


SE_NAME = "DataManagement/StorageElement"


class SeproxyTransferService:
    """A running seproxy Service with :class:`TransferTestHandler` on 127.0.0.1."""

    def __init__(self, storage: Any, encoding: str, protocol: str = "dip",
                 extra: tuple[str, ...] = ()) -> None:
        from seproxy.cli import wiring
        from seproxy.config import Config
        from tests.transfer.TransferTestHandler import TransferTestHandler

        self.storage = storage
        section = "/Systems/DataManagement/Services/StorageElement"
        cfg = Config.load(use_default=True, overrides=[
            f"{section}/Encoding={encoding}",
            f"{section}/StoragePath={storage}",
            f"{section}/Authorization/Default=all",
            *extra,
        ])
        self.service = wiring.service(cfg, SE_NAME, handler_class=TransferTestHandler,
                                     host="127.0.0.1", port=0, protocol=protocol).start()
        self.port = self.service.port
        self.url = f"{protocol}://127.0.0.1:{self.port}/{SE_NAME}"

    def stop(self) -> None:
        self.service.stop()


@pytest.fixture(scope="module")
def seproxy_services(request, tmp_path_factory) -> Iterator[Callable[..., SeproxyTransferService]]:
    """``factory(encoding, max_file_size=0, protocol="dip")``: seproxy services cached for
    the module (``dips`` uses the ``pki`` fixture's host certificate)."""
    started: dict[tuple, SeproxyTransferService] = {}

    def factory(encoding: str = "json", max_file_size: int = 0,
                protocol: str = "dip") -> SeproxyTransferService:
        key = (encoding, max_file_size, protocol)
        if key not in started:
            storage = tmp_path_factory.mktemp(f"se-{encoding}-{max_file_size}-{protocol}")
            extra = [f"/Systems/DataManagement/Services/StorageElement/MaxFileSize={max_file_size}"]
            if protocol == "dips":   # the shared test PKI's host certificate (SAN 127.0.0.1)
                pki = request.getfixturevalue("pki")
                extra += [f"/DIRAC/Security/CertFile={pki.host_cert}",
                          f"/DIRAC/Security/KeyFile={pki.host_key}",
                          f"/DIRAC/Security/CALocation={pki.ca_dir}"]
            started[key] = SeproxyTransferService(storage, encoding, protocol, extra=tuple(extra))
        return started[key]

    yield factory
    for service in started.values():
        service.stop()
