"""Message connections: ``Connection/new``, ``msg_*`` callbacks, server push (PROTOCOL.md 12).

Frames inside an open connection (both directions, plus keep-alives)::

    request   S_OK({"request": True, "name": N, "attrs": [waitForAck, [v1, v2, ...]]
                     [, "id": "<broker>:<n>"]})       values in case-insensitive order of names
    response  S_OK({"request": False, "id": id, "result": S_OK()})   the ack, sent before
                                                                      the message is processed

This module holds what both halves share: :class:`Message` (DIRAC's message object),
:func:`parse_frame` and :class:`MessageEndpoint` (ids, acks, sending). The server half,
``MessageBroker``, is :mod:`seproxy.rpc.server.broker`; the client half, ``MessageClient``,
is :mod:`seproxy.rpc.client.msgclient`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, isReturnStructure, unwrap
from seproxy.rpc.connection import Connection

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
        for name, value in zip(names, values, strict=False):
            setattr(self, name, value)

    def to_frame(self) -> dict:
        body: dict[str, Any] = {"request": True, "name": self._name, "attrs": [self._wait_ack, self.dumpAttrs()]}
        if self._wait_ack and self._id:
            body["id"] = self._id
        return S_OK(body)


def parse_frame(value: Any) -> dict:
    """Validate an incoming message-connection frame (raises SeproxyError)."""
    body = unwrap(value).value
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

    def send_on(self, transport: Connection, msg: Message, encoding: str | None) -> dict:
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
    def ack(transport: Connection, body: dict, encoding: str | None) -> None:
        if body.get("id") is not None:
            transport.send_data(S_OK({"request": False, "id": body["id"], "result": S_OK()}), encoding)
