"""A tiny echo server on a real 127.0.0.1 socket for the transport tests.

Each accepted connection: ``handshake()``, then every frame is sent back until
the peer goes; the outcome of each connection (credential dict or error text)
is put on ``results`` so a test waits on it (no sleeps).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from seproxy.config import Config
from seproxy.errors import PeerClosed, SeproxyError
from seproxy.rpc import transport


@dataclass
class Outcome:
    ok: bool
    credentials: dict = field(default_factory=dict)
    error: str = ""
    session_reused: bool | None = None


class EchoServer:
    def __init__(self, protocol: str, cfg: Config | None, host: str = "127.0.0.1") -> None:
        self.listener = transport.listen(protocol, host, 0, cfg=cfg)
        self.port = self.listener.port
        self.results: queue.Queue[Outcome] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except SeproxyError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: transport.Transport) -> None:
        outcome = Outcome(ok=False)
        try:
            conn.handshake(5.0)
            outcome.credentials = conn.peer_credentials()
            outcome.session_reused = getattr(conn, "session_reused", None)
            outcome.ok = True
            while True:
                conn.send_frame(conn.receive_frame())
        except PeerClosed:
            pass
        except SeproxyError as exc:
            outcome.ok = False
            outcome.error = str(exc)
        finally:
            conn.close()
            self.results.put(outcome)

    def outcome(self, timeout: float = 10.0) -> Outcome:
        return self.results.get(timeout=timeout)

    def close(self) -> None:
        self.listener.close()
        self._thread.join(5)


@pytest.fixture
def echo_server():
    servers: list[EchoServer] = []

    def start(protocol: str = "dip", cfg: Any = None, host: str = "127.0.0.1") -> EchoServer:
        server = EchoServer(protocol, cfg, host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
