"""Serving one connection in a worker thread (PROTOCOL.md 7.2, 4.3, 5).

::

    (seproxy.rpc.server.intake: TLS handshake + the whole proposal, HandshakeTimeout,
     no worker) -> per-address / per-DN caps (busy answer) -> register the connection
    -> checks in DIRAC's order: envelope, service name, action type, authorisation
       (each failure: S_ERROR with a CallStack key, then close)
    -> handler instance (failure: "Server error while loading handler")
    -> S_OK() -> the action -> its final answer -> close
       RPC: one argument frame (whole within RequestTimeout, the watchdog; a frame of
            LargeFrameSize or more waits for one of MaxLargeFrames slots before it is
            read), dispatch (RequestHandler._rh_call_rpc)
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

from seproxy.errors import ProtocolError, SeproxyError, TransportError
from seproxy.returnvalues import EUNAUTHORIZED, S_ERROR, S_OK, unwrap
from seproxy.rpc.connection import ServerConnection
from seproxy.rpc.server import session as sessions
from seproxy.rpc.server.context import ServingService
from seproxy.rpc.server.handler import RequestHandler, finalize_result
from seproxy.rpc.server.request import (
    authorize,
    busy,
    framework_error,
    instantiate,
    observe,
    receive_arguments,
    send,
)
from seproxy.rpc.server.watchdog import Watch
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.proposal import (
    INVALID_PROPOSAL,
    SESSION_ACTION,
    Proposal,
    ProposalRejected,
    check_proposal,
)

log = logging.getLogger("seproxy.rpc.service")

ACTION_TIMEOUT = 600.0  # DIRAC's socket timeout after the handshake (table actions: transfers)


def decode_proposal(service: ServingService, transport: ServerConnection, payload: bytes) -> Proposal | None:
    """The proposal the intake read, checked; None after answering a bad one."""
    try:
        envelope = codec.decode(payload)
    except ProtocolError as exc:
        log.info("Invalid action proposal from %s: %s", transport.id, exc)
        send(service, transport, framework_error(INVALID_PROPOSAL))
        return None
    try:
        return check_proposal(envelope, service.context.service_info["validNames"], service.action_types)
    except ProposalRejected as exc:
        send(service, transport, framework_error(str(exc)))
        return None


def overloaded(service: ServingService) -> dict:
    return framework_error(f"Service {service.name} is overloaded: {service.max_waiting} requests "
                           "already waiting (MaxWaitingPetitions); try again later")


def serve_proposal(service: ServingService, item: tuple[ServerConnection, bytes]) -> None:
    """The life of one connection whose whole proposal has arrived (runs in a worker)."""
    transport, payload = item
    context = service.context
    transport.settimeout(service.request_timeout)
    try:
        credentials = service.compat.credentials(dict(transport.peer_credentials()))
    except Exception as exc:  # noqa: BLE001 - bad clients must not reach the worker loop
        log.info("Credentials of %s unusable: %s", transport.remote_address, exc)
        transport.close()
        return
    ip, dn = str(transport.remote_address[0]), str(credentials.get("DN", ""))
    exceeded = service.caps.acquire(ip, dn)
    if exceeded is not None:
        context.stats["rejected"] += 1
        log.warning("Rejecting client %s due to throttling: %s", transport.id, exceeded)
        send(service, transport, busy(service, exceeded))
        transport.close()
        return
    trid = context.connections.add(transport, credentials,
                                   on_remove=lambda: service.caps.release(ip, dn))
    keep = False
    watch = None
    try:
        proposal = decode_proposal(service, transport, payload)
        if proposal is None:
            return
        if proposal.extra_credentials:
            extra = proposal.extra_credentials
            credentials["extraCredentials"] = list(extra) if isinstance(extra, tuple) else extra
        if proposal.action_type == SESSION_ACTION:
            if not authorize(service, SESSION_ACTION, proposal.action_name, dict(credentials)):
                send(service, transport, framework_error("Unauthorized query", EUNAUTHORIZED))
                return
            keep = sessions.open_session(service, transport, trid, proposal, credentials)
            return
        if not authorize(service, proposal.action_type, proposal.action_name, credentials):
            send(service, transport, framework_error("Unauthorized query", EUNAUTHORIZED))
            return
        try:
            handler = instantiate(service, trid, proposal, transport)
        except Exception:
            log.exception("Server error while loading handler of %s", service.name)
            send(service, transport, framework_error("Server error while loading handler"))
            return
        # from here on every exchange is a whole request with a deadline
        watch = service.watchdog.watch(transport, service.request_timeout, what="request")
        exchange = getattr(handler, "_rh_delegation", None)  # PROTOCOL 4.4, handler-driven
        if exchange is not None:
            error = exchange(transport, credentials, proposal.action_type, proposal.action_name)
            if error is not None:
                send(service, transport, error)
                return
        if not send(service, transport, S_OK()):
            return
        keep = run_action(service, transport, trid, handler, proposal, watch)
    finally:
        if watch is not None:
            watch.cancel()
        context.stats["served"] += 1
        if not keep:
            context.connections.close(trid)


def run_action(service: ServingService, transport: ServerConnection, trid: str, handler: RequestHandler,
               proposal: Proposal, watch: Watch) -> bool:
    """Run the accepted action; True when the connection must stay open. ``watch`` is the
    request deadline armed when the proposal was accepted."""
    action_type, name = proposal.action_tuple
    handler.serviceInfoDict["actionTuple"] = proposal.action_tuple
    started = time.monotonic()
    if action_type == "RPC":
        try:
            envelope, large = receive_arguments(service, transport, watch)
        except SeproxyError as exc:
            log.info("Error while receiving arguments %s: %s", handler.srv_getFormattedRemoteCredentials(), exc)
            return False
        if envelope is None:
            send(service, transport, busy(service, f"MaxLargeFrames={service.large_frames.slots} "
                                                   "large requests in progress"), name)
            return False
        try:
            request = unwrap(envelope)
            del envelope
            if not request.ok:
                return False
            args = request.value
            if not isinstance(args, (list, tuple)):
                send(service, transport, S_ERROR("Invalid RPC arguments: expected a list"), name)
                return False
            del request
            result = handler._rh_call_rpc(name, list(args))
            del args
        finally:
            if large:
                service.large_frames.release()
    elif action_type in service.actions:
        watch.cancel()
        transport.settimeout(ACTION_TIMEOUT)
        # a transfer may take hours, but every chunk window must arrive in time
        window = service.watchdog.watch(transport, service.transfer_window_timeout, progress=True,
                                        what="transfer chunk window")
        try:
            result = service.actions[action_type](handler, name, transport, service.encoding)
        except TransportError as exc:
            log.info("Transfer %s from %s broken: %s", name, transport.id, exc)
            return False
        except Exception as exc:  # a handler's bug becomes the action's answer
            log.exception("Transfer %s failed", name)
            result = S_ERROR(f"Server error while serving {name[:1].lower() + name[1:]}: {exc!r}")
        finally:
            window.cancel()
    elif action_type == "Connection":
        return service.context.msg_broker.serve_connection(handler, transport, trid, name, watch)
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


def reject(service: ServingService, transport: ServerConnection, answer: dict, timeout: float) -> None:
    """Refuse a connection whose proposal is in: ``answer`` (short timeouts), then close."""
    try:
        transport.settimeout(timeout)
        send(service, transport, answer)
    except (SeproxyError, OSError) as exc:
        log.debug("Rejected client %s went away: %s", transport.id, exc)
    except Exception:
        log.exception("Error while rejecting %s", transport.id)
    finally:
        transport.close()


def serve_session(service: ServingService, session: sessions.ReuseSession) -> None:
    sessions.serve_session(service, session)
