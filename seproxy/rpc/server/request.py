"""Steps every server-side exchange shares (worker, reuse session, message broker):
send one answer, the framework's own errors, authorise a call, build a fresh handler,
record a finished call (access log and metrics),
read a request's argument frame (large frames wait for a slot first).

Message connections (``Connection``) are denied unless a rule allows them: an
``Authorization/Connection/...`` option or the handler's ``auth_msg_*`` defaults (a
handler without messages has none); reuse sessions need ``Session/RPC`` or, by default,
an authenticated (registered) caller.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from seproxy import accesslog, metrics
from seproxy.config import schema
from seproxy.errors import LocalProtocolError, SeproxyError
from seproxy.returnvalues import S_ERROR
from seproxy.rpc.connection import Connection, ServerConnection
from seproxy.rpc.server.context import ServingService
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.watchdog import Watch
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.proposal import SESSION_ACTION, Proposal, auth_method_path

log = logging.getLogger("seproxy.rpc.service")


def send(service: ServingService, transport: Connection, value: Any, what: str = "") -> bool:
    """Encode and send one answer; False if it could not be sent.

    An answer the encoding cannot carry (a handler bug, e.g. a ``set`` or a
    ``datetime.time`` in JSON) is logged and *nothing* is sent, as in DIRAC: the
    caller closes the connection and a DIRAC client reports ``Peer closed connection``.
    """
    try:
        payload = codec.encode(value, service.encoding)
    except (LocalProtocolError, ValueError) as exc:  # un-encodable value | unknown Encoding option
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


#: Hard-coded default of ``Session/RPC`` (seproxy's connection reuse): registered callers.
SESSION_DEFAULT_AUTH = ["authenticated"]


def authorize(service: ServingService, action_type: str, action_name: str, credentials: dict) -> bool:
    context = service.context
    if action_type == SESSION_ACTION:
        default: Any = SESSION_DEFAULT_AUTH
    else:
        default = service.handler_class._rh_default_auth(action_type, action_name)
    path = auth_method_path(action_type, action_name)
    if action_type == "Connection" and not context.auth.getValidPropertiesForMethod(path, default):
        # no rule at all would mean "anyone" to the AuthManager: a message connection is
        # a long-lived resource, so it needs a rule that allows it
        allowed = False
    else:
        allowed = context.auth.authQuery(path, credentials, default)
    if not allowed:
        log.warning("Unauthorized query to %s:%s/%s by %s", service.name, action_type, action_name,
                    identity(credentials))
    return allowed


def busy(service: ServingService, what: str) -> dict:
    """The answer to a caller beyond a connection cap or a slot limit."""
    return framework_error(f"Service {service.name} is busy: too many connections ({what}); "
                           "try again later")


def receive_arguments(service: ServingService, transport: ServerConnection,
                      watch: Watch) -> tuple[Any, bool]:
    """The request's argument frame, decoded, and whether a large-frame slot is held (the
    caller releases it after the call; ``(None, False)``: no slot within RequestTimeout).
    ``watch`` (the request deadline) is cancelled once the frame is in. Raises
    SeproxyError when the connection fails."""
    length = transport.next_frame_length()
    large = length >= service.large_frames.size
    if large and not service.large_frames.acquire(service.request_timeout):
        return None, False
    try:
        payload = transport.receive_frame_view() if large else transport.receive_frame()
        watch.cancel()  # the request is in: the call itself has no deadline here
        envelope = codec.decode(payload)
        if large:
            del payload
            transport.take_body_buffer()  # the raw frame is not kept while the call runs
        return envelope, large
    except BaseException:
        if large:
            service.large_frames.release()
        raise


def instantiate(service: ServingService, trid: str, proposal: Proposal | None,
                transport: Connection) -> RequestHandler:
    """A fresh handler for one request (raises on failure)."""
    handler = service.handler_class(handler_init(service, proposal, transport), trid)
    handler.initialize()
    return handler


def handler_init(service: ServingService, proposal: Proposal | None, transport: Connection) -> dict:
    """The ``handlerInitDict`` (``serviceInfoDict``) of a request's handler."""
    init = dict(service.context.service_info)
    init["serviceStartTime"] = service.context.start_time
    if proposal is not None:
        init["clientVersion"] = proposal.client_version
        init["clientSetup"] = proposal.setup
        init["clientVO"] = proposal.vo if proposal.vo is not None else (
            schema.value(service.cfg, "/DIRAC/VirtualOrganization") or "unknown")
    init["clientAddress"] = tuple(transport.remote_address)
    return init


def observe(service: ServingService, handler: RequestHandler, action_type: str, name: str,
            answer: Any, started: float) -> None:
    """The access-log line and the call metrics of one finished call."""
    seconds = time.monotonic() - started
    ok = isinstance(answer, dict) and bool(answer.get("OK"))
    metrics.observe_call(metrics.method_label(action_type, name, handler), ok, seconds)
    accesslog.record(service.name, f"{action_type}/{name}", handler.getRemoteCredentials(), answer,
                     getattr(handler, "_rh_transfer_bytes", 0), seconds)
