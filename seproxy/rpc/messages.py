"""Message connections: ``Connection/new``, ``msg_*`` callbacks, server push (PROTOCOL.md 12).

Frames inside an open connection (both directions, plus keep-alives)::

    request   S_OK({"request": True, "name": N, "attrs": [waitForAck, [v1, v2, ...]]
                     [, "id": "<broker>:<n>"]})       values in case-insensitive order of names
    response  S_OK({"request": False, "id": id, "result": S_OK()})   the ack, sent before
                                                                      the message is processed

``MessageBroker`` is the server half (one per service, one reader thread over all its
message connections); :class:`Message` is the message object both halves use;
``MessageClient`` (seproxy.rpc.msgclient) is the client half.
"""

from __future__ import annotations

import logging
import selectors
import threading
from typing import Any

from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, isReturnStructure

log = logging.getLogger("seproxy.rpc.messages")

ACK_TIMEOUT = 30.0


def attr_order(names: Any) -> list[str]:
    return sorted(names, key=str.lower)


class Message:
    """A named message with typed attributes (DIRAC's ``Message`` object API)."""

    def __init__(self, name: str, definition: dict | None = None, msg_id: str | None = None) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_definition", dict(definition or {}))
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_wait_ack", False)
        object.__setattr__(self, "_id", msg_id)

    def getName(self) -> str:  # noqa: N802 (DIRAC API)
        return self._name

    def getMsgId(self) -> str | None:  # noqa: N802
        return self._id

    def setWaitForAck(self, wait: bool = True) -> None:  # noqa: N802
        object.__setattr__(self, "_wait_ack", bool(wait))

    def getWaitForAck(self) -> bool:  # noqa: N802
        return self._wait_ack

    def getAttrNames(self) -> list[str]:  # noqa: N802
        return attr_order(self._definition or self._values)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"Message {self._name} has no attribute {name}")

    def __setattr__(self, name: str, value: Any) -> None:
        wanted = self._definition.get(name, None) if self._definition else None
        if self._definition and name not in self._definition:
            raise AttributeError(f"{name} is not an attribute of message {self._name}")
        if wanted is not None and not isinstance(value, wanted):
            raise TypeError(f"Attribute {name} of message {self._name} must be {wanted}")
        self._values[name] = value

    def dumpAttrs(self) -> list:  # noqa: N802
        names = self.getAttrNames()
        missing = [n for n in names if n not in self._values]
        if missing:
            raise SeproxyError(f"Message {self._name} lacks attributes {missing}")
        return [self._values[n] for n in names]

    def loadAttrs(self, values: list) -> None:  # noqa: N802
        names = attr_order(self._definition) if self._definition else [f"attr{i}" for i in range(len(values))]
        if self._definition and len(values) != len(names):
            raise SeproxyError(f"Message {self._name} expects {len(names)} attributes")
        for name, value in zip(names, values):
            setattr(self, name, value)

    def to_frame(self) -> dict:
        body: dict[str, Any] = {"request": True, "name": self._name, "attrs": [self._wait_ack, self.dumpAttrs()]}
        if self._wait_ack and self._id:
            body["id"] = self._id
        return S_OK(body)


def parse_frame(value: Any) -> dict:
    """Validate an incoming message-connection frame (raises SeproxyError)."""
    body = value.get("Value") if isinstance(value, dict) and value.get("OK") else None
    if not isinstance(body, dict) or "request" not in body:
        raise SeproxyError("Invalid message frame")
    if body["request"]:
        attrs = body.get("attrs")
        if "name" not in body or not isinstance(attrs, (list, tuple)) or len(attrs) != 2 \
                or not isinstance(attrs[1], (list, tuple)):
            raise SeproxyError("Invalid message request")
    elif "id" not in body:
        raise SeproxyError("Invalid message response")
    return body


class _AckWaiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: dict | None = None


class MessageEndpoint:
    """Shared half of both ends: id counter, ack bookkeeping, sending a Message."""

    def __init__(self, broker_name: str) -> None:
        self.broker_name = broker_name
        self._lock = threading.Lock()
        self._counter = 0
        self._waiting: dict[str, _AckWaiter] = {}
        self._reader: threading.Thread | None = None

    def next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self.broker_name}:{self._counter - 1}"

    def send_on(self, transport: Any, msg: Message, encoding: str | None) -> dict:
        waiter = None
        if msg.getWaitForAck():
            object.__setattr__(msg, "_id", self.next_id())
            waiter = _AckWaiter()
            with self._lock:
                self._waiting[msg.getMsgId()] = waiter
        try:
            transport.send_data(msg.to_frame(), encoding)
        except SeproxyError as exc:
            return S_ERROR(f"Cannot send message {msg.getName()}: {exc}")
        if waiter is None or threading.current_thread() is self._reader:
            return S_OK()
        if not waiter.event.wait(ACK_TIMEOUT):
            with self._lock:
                self._waiting.pop(msg.getMsgId(), None)
            return S_ERROR("Timeout while waiting for message ack")
        return waiter.result or S_OK()

    def got_response(self, body: dict) -> None:
        with self._lock:
            waiter = self._waiting.pop(body["id"], None)
        if waiter is not None:
            waiter.result = body.get("result") if isReturnStructure(body.get("result")) else S_OK()
            waiter.event.set()

    @staticmethod
    def ack(transport: Any, body: dict, encoding: str | None) -> None:
        if body.get("id") is not None:
            transport.send_data(S_OK({"request": False, "id": body["id"], "result": S_OK()}), encoding)


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

    def __init__(self, service: Any) -> None:
        super().__init__(f"{service.name}MSB")
        self.service = service
        self._conns: dict[str, tuple[Any, list]] = {}
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
    def serve_connection(self, handler: Any, transport: Any, trid: str, method: str) -> bool:
        from seproxy.rpc.worker import send
        limit = self.service.option("MaxMessagingConnections", 20)
        if len(self._conns) >= limit:
            log.warning("Maximum number of message connections (%d) reached", limit)
            return False
        if method != "new":
            send(self.service, transport, S_ERROR(f"Invalid connection method {method}"))
            return False
        try:
            envelope = transport.receive_data()
        except SeproxyError:
            return False
        args = envelope.get("Value") if isinstance(envelope, dict) and envelope.get("OK") else None
        error = self._check_args(args)
        if error:
            send(self.service, transport, S_ERROR(error))
            return False
        result = self._callback(handler, "conn_new", trid, args)
        send(self.service, transport, result if isReturnStructure(result) else S_OK())
        if not result.get("OK"):
            return False
        with self._lock:
            self._conns[trid] = (transport, list(args))
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
    def _callback(handler: Any, name: str, trid: str, args: list) -> dict:
        func = getattr(handler, name, None)
        if func is None:
            return S_OK()
        try:
            result = func(trid, *args)
        except Exception as exc:  # noqa: BLE001 - the callback boundary
            return S_ERROR(f"Server error while serving {name[5:]}: {exc}")
        return result if isReturnStructure(result) else S_OK()

    # -- reader thread ---------------------------------------------------------------------
    def _listen(self, trid: str, transport: Any) -> None:
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
            for key, _ in events:
                try:
                    self._read_one(key.data)
                except Exception:  # noqa: BLE001 - one broken connection must not stop the broker
                    log.exception("Message connection %s failed", key.data)
                    self._drop(key.data)

    def _read_one(self, trid: str) -> None:
        entry = self._conns.get(trid)
        if entry is None:
            return
        transport = entry[0]
        try:
            body = parse_frame(transport.receive_data())
            if not body["request"]:
                self.got_response(body)
                return
            self.ack(transport, body, self.service.encoding)
            result = self._dispatch(trid, transport, body)
        except SeproxyError as exc:
            log.info("Message connection %s closed: %s", trid, exc)
            result = S_ERROR(str(exc))
        if not result.get("OK"):
            self._drop(trid)

    def _dispatch(self, trid: str, transport: Any, body: dict) -> dict:
        from seproxy.rpc.worker import authorize, instantiate
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
        except Exception:  # noqa: BLE001
            log.exception("conn_drop failed")
        self.service.context.connections.close(trid)

    def close(self) -> None:
        self._closed = True
        for trid in list(self._conns):
            self._drop(trid)
        if self._selector is not None:
            self._selector.close()
