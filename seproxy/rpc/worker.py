"""Serving one connection in a worker thread (PROTOCOL.md 7.2, 4.3, 5).

::

    handshake (HandshakeTimeout) -> register the connection (trid)
    -> read the proposal (<= PROPOSAL_MAX_SIZE, RequestTimeout)
    -> checks in DIRAC's order: envelope, service name, action type, authorisation
       (each failure: S_ERROR with a CallStack key, then close)
    -> handler instance (failure: "Server error while loading handler")
    -> S_OK() -> the action -> its final answer -> close
       RPC: one argument frame, dispatch (RequestHandler._rh_call_rpc)
       FileTransfer: seproxy.transfer.dispatch.serve_transfer
       Connection: seproxy.rpc.messages (connection stays open)
       Session: seproxy.rpc.session (seproxy extension, connection reused)

A failure to *encode* an answer (a handler returning a value the encoding cannot
carry) is logged and the connection closed without an answer, as DIRAC does.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from seproxy.errors import ProtocolError, SeproxyError, TransportError
from seproxy.returnvalues import EUNAUTHORIZED, S_ERROR, S_OK
from seproxy.rpc.handler import finalize_result
from seproxy.rpc.proposal import (
    DIRAC_ACTION_TYPES,
    INVALID_PROPOSAL,
    PROPOSAL_MAX_SIZE,
    SESSION_ACTION,
    Proposal,
    ProposalRejected,
    auth_method_path,
    check_proposal,
)
from seproxy.rpc.wire import codec

log = logging.getLogger("seproxy.rpc.service")

ACTION_TYPES = DIRAC_ACTION_TYPES + (SESSION_ACTION,)
TRANSFER_TIMEOUT = 600.0  # DIRAC's socket timeout after the handshake


def send(service: Any, transport: Any, value: Any, what: str = "") -> bool:
    """Encode and send one answer; False if it could not be sent.

    An answer the encoding cannot carry (a handler bug, e.g. a ``set`` or a
    ``datetime.time`` in JSON) is logged and *nothing* is sent, as in DIRAC: the
    caller closes the connection and a DIRAC client reports ``Peer closed connection``.
    """
    try:
        payload = codec.encode(value, service.encoding)
    except Exception as exc:  # noqa: BLE001 - un-encodable handler results
        log.error("Cannot encode the answer of %s for %s: %s (connection closed without answer)",
                  what, transport.id, exc)
        return False
    try:
        transport.send_frame(payload)
        return True
    except SeproxyError as exc:
        log.debug("Cannot send to %s: %s", transport.id, exc)
        return False


def framework_error(message: str, errno: int = 0) -> dict:
    """An error sent by the framework outside an action (keeps a - empty - CallStack)."""
    if errno:
        return S_ERROR(errno, message, callStack=[])
    return S_ERROR(message, callStack=[])


def identity(credentials: dict) -> str:
    user = credentials.get("username")
    text = f"[{user}:{credentials.get('group', 'unknown')}]" if user else "unknown"
    if "DN" in credentials:
        text += f"({credentials['DN']})"
    return text


def authorize(service: Any, action_type: str, action_name: str, credentials: dict) -> bool:
    context = service.context
    default = service.handler_class._rh_default_auth(action_type, action_name)
    path = auth_method_path(action_type, action_name)
    allowed = context.auth.authQuery(path, credentials, default)
    if not allowed:
        log.warning("Unauthorized query to %s:%s/%s by %s", service.name, action_type, action_name,
                    identity(credentials))
    return allowed


def instantiate(service: Any, trid: str, proposal: Proposal | None, transport: Any) -> Any:
    """A fresh handler for one request (raises on failure)."""
    handler = service.handler_class(handler_init(service, proposal, transport), trid)
    handler.initialize()
    return handler


def handler_init(service: Any, proposal: Proposal | None, transport: Any) -> dict:
    """The ``handlerInitDict`` (``serviceInfoDict``) of a request's handler."""
    init = dict(service.context.service_info)
    init["serviceStartTime"] = service.context.start_time
    if proposal is not None:
        init["clientVersion"] = proposal.client_version
        init["clientSetup"] = proposal.setup
        init["clientVO"] = proposal.vo if proposal.vo is not None else service.cfg.getValue(
            "/DIRAC/VirtualOrganization", "unknown")
    init["clientAddress"] = tuple(transport.remote_address)
    return init


def receive_proposal(service: Any, transport: Any) -> Proposal | None:
    try:
        envelope = transport.receive_data(PROPOSAL_MAX_SIZE)
    except SeproxyError as exc:
        log.info("Invalid action proposal from %s: %s", transport.id, exc)
        if not isinstance(exc, TransportError):
            send(service, transport, framework_error(INVALID_PROPOSAL))
        return None
    try:
        types = ACTION_TYPES if service.sessions_enabled else DIRAC_ACTION_TYPES
        return check_proposal(envelope, service.context.service_info["validNames"], types)
    except ProposalRejected as exc:
        send(service, transport, framework_error(str(exc)))
        return None


def serve_new(service: Any, transport: Any) -> None:
    """The whole life of one accepted connection (runs in a worker)."""
    context = service.context
    try:
        transport.handshake(timeout=service.handshake_timeout)
        credentials = service.compat.credentials(dict(transport.peer_credentials()))
    except Exception as exc:  # noqa: BLE001 - bad clients must not reach the worker loop
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
            from seproxy.rpc import session
            keep = session.open_session(service, transport, trid, proposal, credentials)
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


def run_action(service: Any, transport: Any, trid: str, handler: Any, proposal: Proposal) -> bool:
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
        if not isinstance(envelope, dict) or envelope.get("OK") is not True:
            return False
        args = envelope.get("Value")
        if not isinstance(args, (list, tuple)):
            send(service, transport, S_ERROR("Invalid RPC arguments: expected a list"), name)
            return False
        result = handler._rh_call_rpc(name, list(args))
    elif action_type == "FileTransfer":
        from seproxy.transfer.dispatch import serve_transfer
        transport.settimeout(TRANSFER_TIMEOUT)
        try:
            result = serve_transfer(handler, name, transport, service.encoding)
        except TransportError as exc:
            log.info("Transfer %s from %s broken: %s", name, transport.id, exc)
            return False
        except Exception as exc:  # noqa: BLE001
            log.exception("Transfer %s failed", name)
            result = S_ERROR(f"Server error while serving {name[:1].lower() + name[1:]}: {exc!r}")
    elif action_type == "Connection":
        transport.settimeout(None)
        return service.context.msg_broker.serve_connection(handler, transport, trid, name)
    else:  # "Message": accepted by the proposal check, no body (PROTOCOL.md 5.5)
        log.error("Unknown action %s", action_type)
        return False
    answer = finalize_result(result, action_type, name)
    if log.isEnabledFor(logging.INFO):
        outcome = "OK" if answer.get("OK") else f"ERROR: {answer.get('Message')}"
        log.info("Returning response %s %s/%s (%.3f secs) %s", handler.srv_getFormattedRemoteCredentials(),
                 action_type, name, time.monotonic() - started, outcome)
    send(service, transport, answer, name)
    return False


def reject(service: Any, transport: Any, timeout: float) -> None:
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


def serve_session(service: Any, session: Any) -> None:
    from seproxy.rpc import session as sessions
    sessions.serve_session(service, session)
