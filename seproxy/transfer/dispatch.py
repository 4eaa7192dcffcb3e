"""Server side of a ``FileTransfer`` action (PROTOCOL.md 6.1, 6.2).

The Service accepts the proposal (authorisation ``FileTransfer/<Direction>`` with
fallback ``FileTransfer/Default`` is done there), then calls
:func:`serve_transfer`, which owns everything up to the final answer:

+---------+------------------------------------+-------------------------------------------+
| step    | wire                               | here                                      |
+=========+====================================+===========================================+
| header  | C→S ``S_OK([id, token(, size)])``  | read (bounded); a trailing seproxy offer  |
|         |                                    | is split off (transfer.extension)         |
| answer  | S→C ``S_OK("Accepted")``           | or ``Service can't transfer files <d>``   |
|         |                                    | when the handler has no ``transfer_<d>``  |
| stream  | FileHelper (6.3)                   | ``transfer_<d>(…, fileHelper)`` under the |
|         |                                    | ``FileTransfer/<d>`` semaphore            |
| result  | S→C final answer (sent by Service) | returned; ``Incomplete transfer`` when the|
|         |                                    | handler said OK but did not finish        |
+---------+------------------------------------+-------------------------------------------+
"""

from __future__ import annotations

from typing import Any

from seproxy import metrics
from seproxy.config import schema
from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, unwrap
from seproxy.rpc.connection import Connection
from seproxy.rpc.server.handler import RequestHandler
from seproxy.transfer import extension, stream
from seproxy.transfer.filehelper import FileHelper

#: direction (lower-cased first letter) -> (header items DIRAC passes, FileHelper direction)
DIRECTIONS: dict[str, tuple[int, str]] = {
    "fromClient": (3, "fromClient"),
    "toClient": (2, "toClient"),
    "bulkFromClient": (3, "fromClient"),
    "bulkToClient": (2, "toClient"),
    "listBulk": (2, "toClient"),
}
#: The header is a short list; nothing legitimate comes near this.
HEADER_LIMIT = 65536


def _lower_first(name: str) -> str:
    return f"{name[:1].lower()}{name[1:]}"


def serve_transfer(handler: RequestHandler, direction: str, transport: Connection, encoding: str | None) -> dict:
    """Run one FileTransfer action on an accepted connection; returns the final answer."""
    try:
        header = transport.receive_data(HEADER_LIMIT)
    except SeproxyError as exc:
        return S_ERROR(f"ConnectionError: Error while receiving file description {exc}")
    request = unwrap(header)
    if not request.ok or not isinstance(request.value, (list, tuple)):
        return S_ERROR("ConnectionError: Error while receiving file description: invalid header")
    name = _lower_first(direction)
    if not hasattr(handler, f"transfer_{name}"):
        transport.send_data(S_ERROR(f"Service can't transfer files {name}", callStack=[]), encoding)
        return S_ERROR(f"Method {direction} for action FileTransfer does not return a S_OK/S_ERROR!")
    arity, helper_direction = DIRECTIONS.get(name, (0, "toClient"))
    file_info, offer = extension.split_header(list(header["Value"]), arity)
    enabled = bool(_cs_option(handler, "TransferStreamExtension"))
    options, answer = extension.accept(offer, enabled=enabled)
    accepted = S_OK("Accepted")
    if answer is not None:
        accepted[extension.ANSWER_KEY] = answer
    transport.send_data(accepted, encoding)
    if name not in DIRECTIONS:
        return S_ERROR(f"Direction {name} does not exist!!!")
    if len(file_info) < arity:
        return S_ERROR(f"Server error while serving {name}: IndexError('tuple index out of range')")

    helper = FileHelper(transport, encoding, options=options)
    helper.setDirection(helper_direction)
    semaphore = _semaphore(handler, name)
    if semaphore is not None:
        semaphore.acquire()
    try:
        method = getattr(handler, f"transfer_{name}")
        with metrics.transfer(_FLOW[helper_direction]):
            result = method(*file_info[:arity], helper)
        if result["OK"] and not helper.finishedTransmission():
            result = S_ERROR(stream.MSG_INCOMPLETE)
    except Exception as exc:  # noqa: BLE001 - the transfer boundary: exceptions become S_ERROR
        _log(handler, name, exc)
        result = S_ERROR(f"Server error while serving {name}: {exc!r}")
    finally:
        if semaphore is not None:
            semaphore.release()
        handler._rh_transfer_bytes = helper.getTransferedBytes()
        metrics.transferred(_FLOW[helper_direction], encoding, handler._rh_transfer_bytes)
    if helper_direction == "fromClient" and not helper.peer_gone:
        if not helper.finishedTransmission():
            _stop_sender(helper, result)
        elif helper.stopped_peer and not options.extended:
            _discard(helper, 1)
    return result


#: The metrics' view of a helper direction: bytes come in from clients, go out to them.
_FLOW = {"fromClient": "in", "toClient": "out"}

#: Seconds we wait for the frames a stopped sender still has on the way.
DRAIN_TIMEOUT = 30.0


def _stop_sender(helper: FileHelper, result: Any) -> None:
    """The handler returned while the client was still sending: collect what is in flight.

    DIRAC's stop-and-wait sender has exactly one frame on the way (its next chunk or
    EOF) and takes the final answer as that frame's ack; reading the frame first
    means we never close on unread data (which would reset the connection before the
    client reads the answer). A windowed (extension) sender may have several on the
    way: it gets the answer as a stop reply now and ends with a terminator we drain to.
    """
    if not helper.options.extended:
        _discard(helper, 1)
        return
    message = result.get("Message") if isinstance(result, dict) and not unwrap(result).ok else None
    try:
        helper.oTransport.send_data(stream.error_message(message or stream.MSG_INCOMPLETE),
                                    helper.encoding)
    except SeproxyError:
        return
    _discard(helper, None)


def _discard(helper: FileHelper, frames: int | None) -> None:
    transport = helper.oTransport
    previous = transport.gettimeout() if hasattr(transport, "gettimeout") else None
    try:
        transport.settimeout(DRAIN_TIMEOUT if previous is None else min(previous, DRAIN_TIMEOUT))
        if frames is None:
            helper.drain()
        else:
            for _ in range(frames):
                helper.receive_any()
    except SeproxyError:
        pass
    finally:
        transport.settimeout(previous)


def _cs_option(handler: RequestHandler, name: str) -> Any:
    """A framework option of the handler's service (``seproxy.config.schema`` types it)."""
    getter = getattr(handler, "srv_getCSOption", None)
    default = schema.SERVICE.option(name).default
    try:
        return getter(name, default) if getter is not None else default
    except Exception:  # noqa: BLE001 - a broken option falls back to the default
        return default


def _semaphore(handler: RequestHandler, name: str) -> Any:
    context = getattr(handler, "_rh_context", None)
    limits = getattr(context, "limits", None)
    return limits.semaphore("FileTransfer", name) if limits is not None else None


def _log(handler: RequestHandler, name: str, exc: BaseException) -> None:
    log = getattr(handler, "log", None)
    if log is not None:
        try:
            log.exception("Uncaught exception when serving Transfer", name)
        except Exception:  # noqa: BLE001
            pass
