"""Steps every server-side exchange shares (worker, reuse session, message broker):
send one answer, the framework's own errors, authorise a call, build a fresh handler,
record a finished call (access log and metrics).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from seproxy import accesslog, metrics
from seproxy.config import schema
from seproxy.errors import LocalProtocolError, SeproxyError
from seproxy.returnvalues import S_ERROR
from seproxy.rpc.connection import Connection
from seproxy.rpc.server.context import ServingService
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.wire import codec
from seproxy.rpc.wire.proposal import Proposal, auth_method_path

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


def authorize(service: ServingService, action_type: str, action_name: str, credentials: dict) -> bool:
    context = service.context
    default = service.handler_class._rh_default_auth(action_type, action_name)
    path = auth_method_path(action_type, action_name)
    allowed = context.auth.authQuery(path, credentials, default)
    if not allowed:
        log.warning("Unauthorized query to %s:%s/%s by %s", service.name, action_type, action_name,
                    identity(credentials))
    return allowed


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
