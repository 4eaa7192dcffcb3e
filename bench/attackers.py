"""Connection attackers for bench/faults.py, run in a process of their own.

One selectors loop keeps a target number of hostile connections of each kind open at
once against a service, re-opening every one the service closes (so "N held open at
once" stays true for the whole measurement):

``tcp``          TCP connected, never a TLS ClientHello (a dead or malicious client);
``tls``          TLS handshake done with a trusted proxy, then silence;
``proposal``     TLS handshake and a whole ``Connection/new`` proposal, then silence;
``loris-dips``   TLS handshake, then a frame header and one byte per ``drip`` seconds;
``loris-http``   ``GET /`` and one more byte per ``drip`` seconds on the HTTP port.

Attack connections leave from ``sources`` loopback addresses (default 50 addresses
127.0.1.1-127.0.1.50, round robin: a distributed attack that per-address caps do not
stop), never from 127.0.0.1, so the normal client is told apart; ``sources=1`` makes it a
single-address attack (127.0.1.1), which the per-address caps cut short.
``counts()`` reports how many of each are open right now, and how many were re-opened.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

KINDS = ("tcp", "tls", "proposal", "loris-dips", "loris-http")


@dataclass
class Conn:
    kind: str
    sock: Any
    state: str = "connecting"  # connecting -> handshaking -> sending -> holding
    pending: bytes = b""
    next_drip: float = 0.0
    opened: float = field(default_factory=time.monotonic)


def proposal_frame(service: str) -> bytes:
    from seproxy.rpc.wire.proposal import build_proposal
    from seproxy.rpc.wire import codec
    payload = codec.encode(build_proposal(service, "Connection", "new"), "dencode")
    return b"%d:%s" % (len(payload), payload)


class Attack:
    def __init__(self, host: str, dips_port: int, http_port: int, targets: dict[str, int], *,
                 proxy: str, ca_dir: str, service: str, drip: float = 20.0,
                 sources: int = 50) -> None:
        self.host, self.dips_port, self.http_port = host, dips_port, http_port
        self.targets = {k: v for k, v in targets.items() if v}
        self.drip = drip
        self.sources = [f"127.0.1.{n}" for n in range(1, max(1, sources) + 1)]
        self._next_source = 0
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        self.ctx.load_cert_chain(proxy)
        self.proposal = proposal_frame(service)
        self.selector = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        self.reopened = dict.fromkeys(KINDS, 0)
        self.failed = dict.fromkeys(KINDS, 0)

    def open_count(self, kind: str) -> int:
        return sum(1 for c in self.conns.values() if c.kind == kind)

    def held(self, kind: str) -> int:
        return sum(1 for c in self.conns.values() if c.kind == kind and c.state == "holding")

    def _open(self, kind: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            self._next_source = (self._next_source + 1) % len(self.sources)
            sock.bind((self.sources[self._next_source], 0))
            port = self.http_port if kind == "loris-http" else self.dips_port
            sock.connect_ex((self.host, port))
        except OSError:
            self.failed[kind] += 1
            sock.close()
            return
        conn = Conn(kind, sock)
        self.conns[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_WRITE, conn)

    def _close(self, conn: Conn, reopen: bool = True) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        self.conns.pop(conn.sock.fileno(), None)
        with contextlib.suppress(OSError):
            conn.sock.close()
        if reopen:
            self.reopened[conn.kind] += 1

    def _step(self, conn: Conn, now: float) -> None:
        sock = conn.sock
        if conn.state == "connecting":
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.failed[conn.kind] += 1
                self._close(conn)
                return
            if conn.kind == "tcp":
                conn.state = "holding"
                self.selector.modify(sock, selectors.EVENT_READ, conn)
                return
            if conn.kind == "loris-http":
                conn.pending, conn.state = b"GET /", "sending"
            else:
                fd = sock.fileno()
                conn.sock = self.ctx.wrap_socket(sock, do_handshake_on_connect=False)
                self.conns[fd] = conn
                conn.state = "handshaking"
        if conn.state == "handshaking":
            try:
                conn.sock.do_handshake()
            except ssl.SSLWantReadError:
                self.selector.modify(conn.sock, selectors.EVENT_READ, conn)
                return
            except ssl.SSLWantWriteError:
                self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
                return
            if conn.kind == "tls":
                conn.state = "holding"
            elif conn.kind == "proposal":
                conn.pending, conn.state = self.proposal, "sending"
            else:  # loris-dips: a frame that announces 1000 bytes and never ends
                conn.pending, conn.state = b"1000:", "sending"
        if conn.state == "sending":
            try:
                sent = conn.sock.send(conn.pending)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                self.selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
                return
            conn.pending = conn.pending[sent:]
            if conn.pending:
                return
            conn.state = "holding"
            conn.next_drip = now + self.drip
        if conn.state == "holding":
            self.selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: Conn) -> None:
        if conn.state != "holding":
            self._step(conn, time.monotonic())
            return
        try:
            data = conn.sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)  # the service closed it: open a new one

    def _drips(self, now: float) -> None:
        for conn in list(self.conns.values()):
            if conn.state == "holding" and conn.kind.startswith("loris") and now >= conn.next_drip:
                conn.next_drip = now + self.drip
                try:
                    conn.sock.send(b"x")
                except (BlockingIOError, ssl.SSLError):
                    pass
                except OSError:
                    self._close(conn)

    def run(self, stop: Any, status: Any, open_rate: float = 500.0) -> None:
        last_report = 0.0
        budget_time = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            budget = int((now - budget_time) * open_rate) + 1
            budget_time = now
            for kind, target in self.targets.items():
                missing = target - self.open_count(kind)
                for _ in range(max(0, min(missing, budget))):
                    self._open(kind)
                    budget -= 1
            for key, mask in self.selector.select(timeout=0.05):
                conn = key.data
                if mask & selectors.EVENT_WRITE:
                    self._step(conn, now)
                elif mask & selectors.EVENT_READ:
                    self._readable(conn)
            self._drips(now)
            if now - last_report > 0.2:
                last_report = now
                status.put({kind: {"held": self.held(kind), "open": self.open_count(kind),
                                   "reopened": self.reopened[kind], "failed": self.failed[kind]}
                            for kind in self.targets})
        for conn in list(self.conns.values()):
            self._close(conn, reopen=False)


def _main(args: dict, stop: Any, status: Any) -> None:
    # a real attacker runs on other machines; here it shares the CPUs with the service
    # and the normal client, so it runs at the lowest priority (its own CPU use is not
    # what is measured, the service's is)
    os.nice(19)
    Attack(**args).run(stop, status)


class AttackProcess:
    """``with AttackProcess(...) as attack: attack.wait_held(); ...`` (a separate process)."""

    def __init__(self, **args: Any) -> None:
        self.args = args
        self.stop = multiprocessing.Event()
        self.status: Any = multiprocessing.Queue()
        self.last: dict = {}
        self.process = multiprocessing.Process(target=_main, args=(args, self.stop, self.status),
                                               daemon=True)

    def __enter__(self) -> AttackProcess:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()

    def counts(self) -> dict:
        while True:
            try:
                self.last = self.status.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty from multiprocessing
                return self.last

    def wait_held(self, fraction: float = 1.0, timeout: float = 120.0) -> dict:
        """Wait until every kind holds ``fraction`` of its target (or the timeout)."""
        deadline = time.monotonic() + timeout
        targets = {k: v for k, v in self.args["targets"].items() if v}
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                self.last = self.status.get(timeout=0.5)
            if self.last and all(self.last.get(k, {}).get("held", 0) >= fraction * n
                                 for k, n in targets.items()):
                return self.last
        return self.last
