"""Server side of the connection-reuse extension (docs/PROTOCOL-EXTENSIONS.md).

::

    C>S proposal [[service, setup, vo], ["Session", "RPC"], extraCredentials, version]
    S>C S_OK({"Session": 1, "IdleTimeout": <s>})     a DIRAC server: "Session is not a known
                                                      action type" (+ close)
    repeat:  C>S S_OK([method, [args...]])
             S>C <final answer of the call>           as for an RPC action, incl. errors
    C closes (or S closes after IdleTimeout without a request / at shutdown)

Opening a session is authorised as ``Session/RPC`` (default: registered callers). Every
call is authorised on its own (a fresh copy of the connection's credentials,
method path = method) and runs in a fresh handler instance, exactly like a
one-connection RPC. Between calls the session does not hold a worker: after a
short linger it is parked in the acceptor's selector until the next request.
A client must not pipeline (one request in flight per connection). Each request must
arrive whole within ``RequestTimeout`` (the service's watchdog; a large one waits for a
``MaxLargeFrames`` slot first), and the session ends when the peer's certificate chain
expires (parked or not): no call runs on a credential past its notAfter.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from seproxy.errors import SeproxyError
from seproxy.returnvalues import EUNAUTHORIZED, S_ERROR, S_OK, unwrap
from seproxy.rpc.connection import ServerConnection
from seproxy.rpc.server.connections import ConnectionEntry, ConnectionRegistry
from seproxy.rpc.server.context import ServingService
from seproxy.rpc.server.handler import RequestHandler, finalize_result
from seproxy.rpc.server.request import (
    authorize,
    busy,
    framework_error,
    handler_init,
    observe,
    receive_arguments,
    send,
)
from seproxy.rpc.wire.proposal import Proposal

log = logging.getLogger("seproxy.rpc.session")

SESSION_VERSION = 1
#: How long a worker waits for the next request before parking the session (s).
LINGER = 0.005
#: Methods whose authorisation result a session remembers (per configuration generation).
AUTH_CACHE_SIZE = 256


@dataclass
class ReuseSession:
    transport: ServerConnection
    trid: str
    proposal: Proposal
    base_credentials: dict
    connections: ConnectionRegistry
    calls: int = 0
    closed: bool = field(default=False)
    #: method -> (config generation, credential dict after an *allowed* authorisation)
    allowed: dict = field(default_factory=dict)
    #: (config generation, handler init dict) - the same for every call of the session
    init: tuple = (None, None)
    #: the connection's registry entry (its ``credentials`` are set for each call)
    entry: ConnectionEntry | None = None
    #: monotonic time at which the peer's credential expires (None: never, e.g. dip)
    not_after: float | None = None

    def expired(self, now: float | None = None) -> bool:
        if self.not_after is None:
            return False
        return (now if now is not None else time.monotonic()) >= self.not_after

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.connections.close(self.trid)


def open_session(service: ServingService, transport: ServerConnection, trid: str, proposal: Proposal,
                 credentials: dict) -> bool:
    """Answer a ``Session`` proposal; True when the session took over the connection."""
    if proposal.action_name != "RPC":
        send(service, transport, framework_error(f"Unsupported session type {proposal.action_name}"))
        return False
    if not service.sessions_available:
        send(service, transport, framework_error("Too many open sessions; use one connection per call"))
        return False
    answer = S_OK({"Session": SESSION_VERSION, "IdleTimeout": service.session_idle_timeout})
    if not send(service, transport, answer):
        return False
    session = ReuseSession(transport, trid, proposal, dict(credentials), service.context.connections)
    session.entry = session.connections.get(trid)
    chain = transport.peer_chain()
    if chain is not None:
        session.not_after = time.monotonic() + chain.seconds_left
    serve_session(service, session)
    return True


def serve_session(service: ServingService, session: ReuseSession) -> None:
    """Serve requests while they keep coming; then park (or close) the session."""
    try:
        _serve(service, session)
    except BaseException:
        session.close()
        raise


def _serve(service: ServingService, session: ReuseSession) -> None:
    transport = session.transport
    while True:
        if session.expired():
            log.info("Session %s closed: the peer's credential expired", session.trid)
            session.close()
            return
        transport.settimeout(service.request_timeout)
        watch = service.watchdog.watch(transport, service.request_timeout, what="session request")
        try:
            envelope, large = receive_arguments(service, transport, watch)
        except SeproxyError as exc:
            log.debug("Session %s ended: %s", session.trid, exc)
            session.close()
            return
        finally:
            watch.cancel()
        if envelope is None:  # no large-frame slot in time
            send(service, transport, busy(service, f"MaxLargeFrames={service.large_frames.slots} "
                                                   "large requests in progress"))
            session.close()
            return
        try:
            value = unwrap(envelope).value
            del envelope
            if (not isinstance(value, (list, tuple)) or len(value) != 2 or not isinstance(value[0], str)
                    or not isinstance(value[1], (list, tuple))):
                send(service, transport, S_ERROR("Invalid session request: expected S_OK([method, [args]])"))
                session.close()
                return
            if not call(service, session, value[0], list(value[1])):
                session.close()
                return
        finally:
            if large:
                service.large_frames.release()
        session.calls += 1
        if service.stopping:
            session.close()
            return
        if not transport.wait_readable(LINGER):
            service.park_session(session)
            return


def _copy(credentials: dict, list_keys: tuple = ()) -> dict:
    """A fresh credential dict (its lists copied too: a handler may change them)."""
    copy = dict(credentials)
    for key in list_keys:
        copy[key] = list(copy[key])
    return copy


def _snapshot(credentials: dict) -> tuple[dict, tuple]:
    snapshot = _copy(credentials, tuple(k for k, v in credentials.items() if type(v) is list))
    return snapshot, tuple(k for k, v in snapshot.items() if type(v) is list)


def _authorized(service: ServingService, session: ReuseSession, method: str) -> dict | None:
    """The call's credential dict after authorisation, None when denied.

    The session's credentials and the handler never change, so an allowed method
    stays allowed (with the same resulting dict) until the configuration changes;
    denials always take the full path (and log).
    """
    generation = service.cfg.generation
    entry = session.entry
    hit = session.allowed.get(method)
    if hit is not None and hit[0] == generation:
        credentials = _copy(hit[1], hit[2])
        if entry is not None:
            entry.credentials = credentials
        return credentials
    credentials = dict(session.base_credentials)
    if entry is not None:
        entry.credentials = credentials
    if not authorize(service, "RPC", method, credentials):
        return None
    if len(session.allowed) < AUTH_CACHE_SIZE:
        session.allowed[method] = (generation, *_snapshot(credentials))
    return credentials


def _new_handler(service: ServingService, session: ReuseSession) -> RequestHandler:
    generation = service.cfg.generation
    if session.init[0] != generation:
        session.init = (generation, handler_init(service, session.proposal, session.transport))
    handler = service.handler_class(dict(session.init[1]), session.trid)
    handler.initialize()
    return handler


def call(service: ServingService, session: ReuseSession, method: str, args: list) -> bool:
    """One RPC inside a session; False if the connection broke."""
    if _authorized(service, session, method) is None:
        denied = finalize_result(S_ERROR(EUNAUTHORIZED, "Unauthorized query"), "RPC", method)
        return send(service, session.transport, denied, method)
    try:
        handler = _new_handler(service, session)
    except Exception:
        log.exception("Server error while loading handler of %s", service.name)
        return send(service, session.transport, S_ERROR("Server error while loading handler", callStack=[]), method)
    handler.serviceInfoDict["actionTuple"] = ("RPC", method)
    started = time.monotonic()
    result = finalize_result(handler._rh_call_rpc(method, args), "RPC", method)
    observe(service, handler, "RPC", method, result, started)
    return send(service, session.transport, result, method)
