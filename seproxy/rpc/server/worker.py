"""Serving one connection in a worker thread (PROTOCOL.md 7.2, 4.3, 5).

::

    handshake (HandshakeTimeout) -> register the connection (trid)
    -> read the proposal (<= PROPOSAL_MAX_SIZE, RequestTimeout)
    -> checks in DIRAC's order: envelope, service name, action type, authorisation
       (each failure: S_ERROR with a CallStack key, then close)
    -> handler instance (failure: "Server error while loading handler")
    -> S_OK() -> the action -> its final answer -> close
       RPC: one argument frame, dispatch (RequestHandler._rh_call_rpc)
       other types (FileTransfer): the service's action table, given by whoever built
       the Service (seproxy.transfer.dispatch.serve_transfer for FileTransfer)
       Connection: seproxy.rpc.server.broker (connection stays open)
       Session: seproxy.rpc.server.session (seproxy extension, connection reused)

A failure to *encode* an answer (a handler returning a value the encoding cannot
carry) is logged and the connection closed without an answer, as DIRAC does.
"""

from __future__ import annotations

import logging
import time

from seproxy import metrics
from seproxy.errors import ProtocolError, SeproxyError, TransportError
from seproxy.returnvalues import EUNAUTHORIZED, S_ERROR, S_OK, unwrap
from seproxy.rpc.connection import ServerConnection
from seproxy.rpc.server import session as sessions
from seproxy.rpc.server.context import ServingService
from seproxy.rpc.server.handler import RequestHandler, finalize_result
from seproxy.rpc.server.request import authorize, framework_error, instantiate, observe, send
from seproxy.rpc.wire.proposal import (
    INVALID_PROPOSAL,
    PROPOSAL_MAX_SIZE,
    SESSION_ACTION,
    Proposal,
    ProposalRejected,
    check_proposal,
)

log = logging.getLogger("seproxy.rpc.service")

ACTION_TIMEOUT = 600.0  # DIRAC's socket timeout after the handshake (table actions: transfers)


def receive_proposal(service: ServingService, transport: ServerConnection) -> Proposal | None:
    try:
        envelope = transport.receive_data(PROPOSAL_MAX_SIZE)
    except SeproxyError as exc:
        log.info("Invalid action proposal from %s: %s", transport.id, exc)
        if not isinstance(exc, TransportError):
            send(service, transport, framework_error(INVALID_PROPOSAL))
        return None
    try:
        types = service.action_types
        return check_proposal(envelope, service.context.service_info["validNames"], types)
    except ProposalRejected as exc:
        send(service, transport, framework_error(str(exc)))
        return None


def serve_new(service: ServingService, transport: ServerConnection) -> None:
    """The whole life of one accepted connection (runs in a worker)."""
    context = service.context
    try:
        transport.handshake(timeout=service.handshake_timeout)
        credentials = service.compat.credentials(dict(transport.peer_credentials()))
        metrics.handshake(None)
    except Exception as exc:  # noqa: BLE001 - bad clients must not reach the worker loop
        metrics.handshake(exc)
        log.info("Handshake with %s failed: %s", transport.remote_address, exc)
        transport.close()
        return
    trid = context.connections.add(transport, credentials)
    keep = False
    try:
        transport.settimeout(service.request_timeout)
        proposal = receive_proposal(service, transport)
        if proposal is None:
            return
        if proposal.extra_credentials:
            extra = proposal.extra_credentials
            credentials["extraCredentials"] = list(extra) if isinstance(extra, tuple) else extra
        if proposal.action_type == SESSION_ACTION:
            keep = sessions.open_session(service, transport, trid, proposal, credentials)
            return
        if not authorize(service, proposal.action_type, proposal.action_name, credentials):
            send(service, transport, framework_error("Unauthorized query", EUNAUTHORIZED))
            return
        try:
            handler = instantiate(service, trid, proposal, transport)
        except Exception:  # noqa: BLE001
            log.exception("Server error while loading handler of %s", service.name)
            send(service, transport, framework_error("Server error while loading handler"))
            return
        exchange = getattr(handler, "_rh_delegation", None)  # PROTOCOL 4.4, handler-driven
        if exchange is not None:
            error = exchange(transport, credentials, proposal.action_type, proposal.action_name)
            if error is not None:
                send(service, transport, error)
                return
        if not send(service, transport, S_OK()):
            return
        keep = run_action(service, transport, trid, handler, proposal)
    finally:
        context.stats["served"] += 1
        if not keep:
            context.connections.close(trid)


def run_action(service: ServingService, transport: ServerConnection, trid: str, handler: RequestHandler,
               proposal: Proposal) -> bool:
    """Run the accepted action; True when the connection must stay open."""
    action_type, name = proposal.action_tuple
    handler.serviceInfoDict["actionTuple"] = proposal.action_tuple
    started = time.monotonic()
    if action_type == "RPC":
        try:
            envelope = transport.receive_data()
        except SeproxyError as exc:
            log.info("Error while receiving arguments %s: %s", handler.srv_getFormattedRemoteCredentials(), exc)
            return False
        request = unwrap(envelope)
        if not request.ok:
            return False
        args = request.value
        if not isinstance(args, (list, tuple)):
            send(service, transport, S_ERROR("Invalid RPC arguments: expected a list"), name)
            return False
        result = handler._rh_call_rpc(name, list(args))
    elif action_type in service.actions:
        transport.settimeout(ACTION_TIMEOUT)
        try:
            result = service.actions[action_type](handler, name, transport, service.encoding)
        except TransportError as exc:
            log.info("Transfer %s from %s broken: %s", name, transport.id, exc)
            return False
        except Exception as exc:  # noqa: BLE001 - a handler's bug becomes the action's answer
            log.exception("Transfer %s failed", name)
            result = S_ERROR(f"Server error while serving {name[:1].lower() + name[1:]}: {exc!r}")
    elif action_type == "Connection":
        transport.settimeout(None)
        return service.context.msg_broker.serve_connection(handler, transport, trid, name)
    else:  # "Message" (accepted by the proposal check, no body: PROTOCOL.md 5.5), or no server
        log.error("Unknown action %s", action_type)
        return False
    answer = finalize_result(result, action_type, name)
    observe(service, handler, action_type, name, answer, started)
    if log.isEnabledFor(logging.INFO):
        outcome = "OK" if unwrap(answer).ok else f"ERROR: {answer.get('Message')}"
        log.info("Returning response %s %s/%s (%.3f secs) %s", handler.srv_getFormattedRemoteCredentials(),
                 action_type, name, time.monotonic() - started, outcome)
    send(service, transport, answer, name)
    return False


def reject(service: ServingService, transport: ServerConnection, timeout: float) -> None:
    """Overload: an explicit error instead of the answer, with short timeouts, then close."""
    try:
        transport.handshake(timeout=timeout)
        transport.settimeout(timeout)
        transport.receive_data(PROPOSAL_MAX_SIZE)
        send(service, transport, framework_error(
            f"Service {service.name} is overloaded: {service.max_waiting} requests already waiting "
            "(MaxWaitingPetitions); try again later"))
    except (SeproxyError, OSError, ProtocolError) as exc:
        log.debug("Rejected client %s went away: %s", transport.id, exc)
    except Exception:  # noqa: BLE001
        log.exception("Error while rejecting %s", transport.id)
    finally:
        transport.close()


def serve_session(service: ServingService, session: sessions.ReuseSession) -> None:
    sessions.serve_session(service, session)
