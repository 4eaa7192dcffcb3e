"""Client side of the connection-reuse extension (docs/PROTOCOL-EXTENSIONS.md).

A process-wide pool of idle session connections keyed by (URL, identity options,
encoding). ``call(client, method, args)`` runs one RPC over a pooled session and
returns its answer, or ``None`` when the caller must use DIRAC's one connection per
call: the server is a DIRAC one (it answered ``Session is not a known action type``;
remembered per URL), or it refused a new session (too many open).

A pooled connection idle for more than half the server's ``IdleTimeout`` is dropped
rather than used, and a request that fails on a *reused* connection before any
answer byte arrived is retried once on a new one (the server only closes idle
sessions, so that request was never read).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, unwrap
from seproxy.rpc.connection import Connection
from seproxy.rpc.wire.proposal import SESSION_ACTION

#: Outcomes of ``BaseClient._exchange`` (seproxy.rpc.client.base), the one request/answer step.
ANSWERED, INVALID, BROKEN = 0, 1, 2

log = logging.getLogger("seproxy.rpc.reuse")

#: Idle connections kept per key (more are closed when returned).
MAX_IDLE_PER_KEY = 32
UNKNOWN_ACTION = f"{SESSION_ACTION} is not a known action type"


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple, list[tuple[Any, float, float]]] = {}
        self.unsupported: set[str] = set()

    def take(self, key: tuple) -> tuple[Any, float]:
        now = time.monotonic()
        with self._lock:
            stack = self._idle.get(key, [])
            while stack:
                transport, since, max_idle = stack.pop()
                if now - since < max_idle:
                    return transport, max_idle
                transport.close()
        return None, 0.0

    def give(self, key: tuple, transport: Connection, max_idle: float) -> None:
        with self._lock:
            stack = self._idle.setdefault(key, [])
            if len(stack) < MAX_IDLE_PER_KEY:
                stack.append((transport, time.monotonic(), max_idle))
                return
        transport.close()

    def close(self, key_filter: Any = None) -> None:
        with self._lock:
            keys = [k for k in self._idle if key_filter is None or key_filter(k)]
            victims = [t for k in keys for t, _, _ in self._idle.pop(k)]
        for transport in victims:
            transport.close()


POOL = _Pool()
atexit.register(POOL.close)


def _key(client: Any, url: str) -> tuple:
    """The pool key of ``client``'s connections to ``url`` (cached on the client: the
    options it is made of are set when the client is created)."""
    keys = client.__dict__.setdefault("_reuse_keys", {})
    key = keys.get(url)
    if key is None:
        key = keys[url] = (url, str(client.proxyLocation), client.useCertificates, client.skipCACheck,
                           repr(client.extraCredentials), client.encoding, client.vo, client.timeout)
    return key


def _open_session(client: Any, url: str) -> tuple[Any, float] | None:
    """A new session connection and its max idle time; None: use one connection per call."""
    try:
        transport = client._open(url)
    except (SeproxyError, OSError) as exc:
        log.debug("reuse: cannot connect to %s: %s", url, exc)
        return None
    try:
        answer = client._propose(transport, SESSION_ACTION, "RPC")
    except (SeproxyError, OSError) as exc:
        transport.close()
        log.debug("reuse: session proposal to %s failed: %s", url, exc)
        return None
    if not unwrap(answer).ok:
        transport.close()
        if answer.get("Message") == UNKNOWN_ACTION:
            log.info("%s does not support connection reuse: one connection per call", url)
            POOL.unsupported.add(url)
        return None
    value = answer.get("Value") if isinstance(answer.get("Value"), dict) else {}
    idle = value.get("IdleTimeout", 60)
    return transport, max(0.5, float(idle) / 2 if isinstance(idle, (int, float)) else 30.0)


def call(client: Any, method: str, args: list) -> dict | None:
    """One RPC over a reused connection; None when the caller must fall back."""
    url = client.urls[0]
    if url in POOL.unsupported:
        return None
    key = _key(client, url)
    for attempt in (0, 1):
        transport, max_idle = POOL.take(key)
        fresh = transport is None
        if fresh:
            opened = _open_session(client, url)
            if opened is None:
                return None
            transport, max_idle = opened
        try:
            answer, state = client._exchange(transport, {"OK": True, "Value": [method, args]})
        except BaseException:  # unencodable arguments: raised to the caller, as without reuse
            transport.close()
            raise
        if state == ANSWERED:
            POOL.give(key, transport, max_idle)
            return answer
        transport.close()
        if state == BROKEN:
            if not fresh and attempt == 0:
                continue
            return S_ERROR(f"Error while calling {method} on {url}: {answer}")
        return answer
    return None  # pragma: no cover - the loop always returns


def close_idle(client: Any) -> None:
    """Close the idle pooled connections that ``client`` would use."""
    keys = {_key(client, url) for url in client.urls}
    POOL.close(lambda k: k in keys)
