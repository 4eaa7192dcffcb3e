"""Server half of message connections: ``MessageBroker`` (one per service, one reader
thread over all its message connections) and ``MessageSender`` (``serviceInfo["messageSender"]``).

The frames and the :class:`~seproxy.rpc.messages.Message` object are in :mod:`seproxy.rpc.messages`.

Bounded: ``Connection/new`` arguments must arrive within ``RequestTimeout``; connections
being opened count against ``MaxMessagingConnections``; the reader never waits on one
connection (frames are collected as they trickle in, at most ``MAX_MESSAGE_SIZE`` bytes);
a connection ends when the peer's certificate chain expires.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
from typing import Any

from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, isReturnStructure, unwrap
from seproxy.rpc.connection import Connection, ServerConnection
from seproxy.rpc.messages import Message, MessageEndpoint, parse_frame
from seproxy.rpc.server.context import ServingService
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.request import authorize, instantiate, send
from seproxy.rpc.server.watchdog import Watch
from seproxy.rpc.wire import codec

log = logging.getLogger("seproxy.rpc.messages")

#: Largest message frame a connection may send (bytes).
MAX_MESSAGE_SIZE = 1 << 20


class MessageSender:
    """``serviceInfo["messageSender"]``: push messages to clients of one service."""

    def __init__(self, broker: MessageBroker) -> None:
        self._broker = broker

    def createMessage(self, msgName: str) -> dict:  # noqa: N802,N803
        return self._broker.create_message(msgName)

    def sendMessage(self, trid: str, msgObj: Message) -> dict:  # noqa: N802,N803
        return self._broker.send_message(trid, msgObj)


class MessageBroker(MessageEndpoint):
    """Server half: open message connections of one service."""

    def __init__(self, service: ServingService) -> None:
        super().__init__(f"{service.name}MSB")
        self.service = service
        self._conns: dict[str, tuple[ServerConnection, list]] = {}
        self._not_after: dict[str, float] = {}  # trid -> monotonic end of the peer's credential
        self._opening = 0  # Connection/new being set up (count against the limit)
        self._selector: selectors.BaseSelector | None = None
        self._closed = False

    def sender(self) -> MessageSender:
        return MessageSender(self)

    def definitions(self) -> dict:
        merged: dict = {}
        for klass in reversed(self.service.handler_class.__mro__ if self.service.handler_class else ()):
            merged.update(vars(klass).get("MSG_DEFINITIONS", {}) or {})
        return merged

    def create_message(self, name: str) -> dict:
        definitions = self.definitions()
        if name not in definitions:
            return S_ERROR(f"Unknown message {name}")
        return S_OK(Message(name, definitions[name]))

    def send_message(self, trid: str, msg: Message) -> dict:
        entry = self._conns.get(trid)
        if entry is None:
            return S_ERROR(f"No message connection {trid}")
        return self.send_on(entry[0], msg, self.service.encoding)

    def disconnect(self, trid: str) -> dict:
        self._drop(trid)
        return S_OK()

    # -- Connection/new --------------------------------------------------------------------
    def serve_connection(self, handler: RequestHandler, transport: ServerConnection, trid: str, method: str,
                         watch: Watch | None = None) -> bool:
        """``Connection/new``: read its arguments (whole within the request deadline
        ``watch``), run ``conn_new``, then hand the connection to the reader thread."""
        limit = self.service.option("MaxMessagingConnections")
        with self._lock:
            full = len(self._conns) + self._opening >= limit
            if not full:
                self._opening += 1
        if full:
            log.warning("Maximum number of message connections (%d) reached", limit)
            send(self.service, transport, S_ERROR(
                f"Service {self.service.name} is busy: too many message connections "
                f"(MaxMessagingConnections={limit}); try again later"))
            return False
        try:
            return self._open(handler, transport, trid, method, watch)
        finally:
            with self._lock:
                self._opening -= 1

    def _open(self, handler: RequestHandler, transport: ServerConnection, trid: str, method: str,
              watch: Watch | None) -> bool:
        if method != "new":
            send(self.service, transport, S_ERROR(f"Invalid connection method {method}"))
            return False
        try:
            envelope = transport.receive_data()
        except SeproxyError:
            return False
        finally:
            if watch is not None:
                watch.cancel()
        args = unwrap(envelope).value
        error = self._check_args(args)
        if error:
            send(self.service, transport, S_ERROR(error))
            return False
        result = self._callback(handler, "conn_new", trid, args)
        send(self.service, transport, result if isReturnStructure(result) else S_OK())
        if not unwrap(result).ok:
            return False
        chain = transport.peer_chain()
        seconds = chain.seconds_left if chain is not None else None
        with self._lock:
            self._conns[trid] = (transport, list(args))
            if seconds is not None:  # the connection ends with the peer's credential
                self._not_after[trid] = time.monotonic() + seconds
        self._callback(handler, "conn_connected", trid, args)
        self._listen(trid, transport)
        return True

    @staticmethod
    def _check_args(args: Any) -> str | None:
        if not isinstance(args, (list, tuple)) or len(args) != 2:
            return "Expected 2 arguments"
        for index, kind in enumerate((str, dict)):
            if not isinstance(args[index], kind):
                return f"Invalid type for argument {index}"
        return None

    @staticmethod
    def _callback(handler: RequestHandler, name: str, trid: str, args: list) -> dict:
        func = getattr(handler, name, None)
        if func is None:
            return S_OK()
        try:
            result = func(trid, *args)
        except Exception as exc:  # noqa: BLE001 - the callback boundary
            return S_ERROR(f"Server error while serving {name[5:]}: {exc}")
        return result if isReturnStructure(result) else S_OK()

    # -- reader thread ---------------------------------------------------------------------
    def _listen(self, trid: str, transport: Connection) -> None:
        with self._lock:
            if self._selector is None:
                self._selector = selectors.DefaultSelector()
                self._reader = threading.Thread(target=self._read_loop, name=f"{self.broker_name}", daemon=True)
                self._selector.register(transport.fileno(), selectors.EVENT_READ, trid)
                self._reader.start()
                return
            self._selector.register(transport.fileno(), selectors.EVENT_READ, trid)

    def _read_loop(self) -> None:
        while not self._closed:
            try:
                events = self._selector.select(timeout=0.5)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            for trid, not_after in list(self._not_after.items()):
                if not_after <= now:
                    log.info("Message connection %s closed: the peer's credential expired", trid)
                    self._drop(trid)
            for key, _ in events:
                try:
                    self._read_one(key.data)
                except Exception:  # one broken connection must not stop the broker
                    log.exception("Message connection %s failed", key.data)
                    self._drop(key.data)

    def _read_one(self, trid: str) -> None:
        entry = self._conns.get(trid)
        if entry is None:
            return
        transport = entry[0]
        try:
            # never wait here: one reader serves every connection, so a frame that
            # arrives a byte at a time is collected across wake-ups
            payload = transport.receive_frame_nowait(MAX_MESSAGE_SIZE)
            if payload is None:
                return
            body = parse_frame(codec.decode(payload))
            if not body["request"]:
                self.got_response(body)
                return
            self.ack(transport, body, self.service.encoding)
            result = self._dispatch(trid, transport, body)
        except SeproxyError as exc:
            log.info("Message connection %s closed: %s", trid, exc)
            result = S_ERROR(str(exc))
        if not unwrap(result).ok:
            self._drop(trid)

    def _dispatch(self, trid: str, transport: Connection, body: dict) -> dict:
        name = body["name"]
        definitions = self.definitions()
        if name not in definitions:
            return S_ERROR(f"Unknown message {name}")
        msg = Message(name, definitions[name], body.get("id"))
        try:
            msg.loadAttrs(list(body["attrs"][1]))
        except (SeproxyError, TypeError, AttributeError) as exc:
            return S_ERROR(str(exc))
        entry = self.service.context.connections.get(trid)
        credentials = dict(entry.credentials) if entry else {}
        if not authorize(self.service, "Message", name, credentials):
            return S_ERROR("Unauthorized message")
        handler = instantiate(self.service, trid, None, transport)
        func = getattr(handler, f"msg_{name}", None)
        if func is None:
            return S_ERROR(f"Handler function for message {name} does not exist!")
        try:
            result = func(msg)
        except Exception as exc:  # noqa: BLE001
            return S_ERROR(f"Server error while serving {name}: {exc}")
        return result if isReturnStructure(result) else S_ERROR(f"Message {name} does not return a S_OK/S_ERROR")

    def _drop(self, trid: str) -> None:
        with self._lock:
            entry = self._conns.pop(trid, None)
            self._not_after.pop(trid, None)
        if entry is None:
            return
        transport, args = entry
        try:
            if self._selector is not None:
                self._selector.unregister(transport.fileno())
        except (KeyError, ValueError, OSError):
            pass
        try:
            handler = self.service.handler_class(dict(self.service.context.service_info), trid)
            self._callback(handler, "conn_drop", trid, args)
        except Exception:
            log.exception("conn_drop failed")
        self.service.context.connections.close(trid)

    def close(self) -> None:
        self._closed = True
        for trid in list(self._conns):
            self._drop(trid)
        if self._selector is not None:
            self._selector.close()
