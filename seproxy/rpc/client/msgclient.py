"""``MessageClient``: the client half of message connections (PROTOCOL.md 12, DIRAC API).

::

    client = MessageClient("dips://host:port/System/Service", definitions=Handler.MSG_DEFINITIONS)
    client.subscribeToMessage("Note", callback)       # callback(msgObj) for pushed messages
    client.connect(key="value")                       # Connection/new + [uniqueName, extraParams]
    msg = client.createMessage("Note")["Value"]; msg.text = "hi"; msg.count = 1
    client.sendMessage(msg)
    client.disconnect()

``definitions`` (seproxy keyword) gives the message schema (the service handler's
``MSG_DEFINITIONS``) so attributes travel in the agreed order and are type-checked;
without it, received messages expose positional attributes ``attr0``, ``attr1``...
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

from seproxy.errors import SeproxyError
from seproxy.returnvalues import S_ERROR, S_OK, unwrap
from seproxy.rpc.client.base import BaseClient
from seproxy.rpc.connection import Connection
from seproxy.rpc.messages import Message, MessageEndpoint, parse_frame

log = logging.getLogger("seproxy.rpc.msgclient")


class MessageClient(BaseClient):
    def __init__(self, url: str, **kwargs: Any) -> None:
        self._definitions: dict = dict(kwargs.pop("definitions", None) or {})
        super().__init__(url, **kwargs)
        self._endpoint = MessageEndpoint("GlobalMessageBroker")
        self._callbacks: dict[str, list[Callable[[Message], Any]]] = {}
        self._on_disconnect: list[Callable[[Any], Any]] = []
        self._transport: Connection | None = None
        self._unique_name = secrets.token_hex(16)

    # -- DIRAC API -------------------------------------------------------------------------
    def getUniqueName(self) -> str:  # noqa: N802
        return self._unique_name

    def getTrid(self) -> str | None:  # noqa: N802
        return self._transport.id if self._transport is not None else None

    def subscribeToMessage(self, msgName: str, cbFunction: Callable[[Message], Any]) -> dict:  # noqa: N802,N803
        self._callbacks.setdefault(msgName, []).append(cbFunction)
        return S_OK()

    def subscribeToAllMessages(self, cbFunction: Callable[[Message], Any]) -> dict:  # noqa: N802,N803
        return self.subscribeToMessage("*", cbFunction)

    def subscribeToDisconnect(self, cbFunction: Callable[[Any], Any]) -> dict:  # noqa: N802,N803
        self._on_disconnect.append(cbFunction)
        return S_OK()

    def createMessage(self, msgName: str) -> dict:  # noqa: N802,N803
        if self._definitions and msgName not in self._definitions:
            return S_ERROR(f"Unknown message {msgName}")
        return S_OK(Message(msgName, self._definitions.get(msgName)))

    def connect(self, **extraParams: Any) -> dict:  # noqa: N803
        result, transport = self._connect_and_propose("Connection", "new")
        if not result["OK"]:
            return result
        try:
            transport.send_data(S_OK([self._unique_name, extraParams]), self.encoding)
            answer = transport.receive_data()
        except SeproxyError as exc:
            transport.close()
            return S_ERROR(f"Cannot open the message connection: {exc}")
        reply = unwrap(answer)
        if not reply.ok:
            transport.close()
            return answer if reply.valid else S_ERROR("Invalid answer to Connection/new")
        transport.settimeout(None)
        self._transport = transport
        self._endpoint._reader = threading.Thread(target=self._read_loop, name="MessageClient", daemon=True)
        self._endpoint._reader.start()
        return S_OK()

    def sendMessage(self, msgObj: Message) -> dict:  # noqa: N802,N803
        if self._transport is None:
            return S_ERROR("Not connected")
        return self._endpoint.send_on(self._transport, msgObj, self.encoding)

    def disconnect(self) -> dict:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        return S_OK()

    # -- reader ----------------------------------------------------------------------------
    def _read_loop(self) -> None:
        transport = self._transport
        while transport is not None and transport is self._transport:
            try:
                body = parse_frame(transport.receive_data())
                if not body["request"]:
                    self._endpoint.got_response(body)
                    continue
                self._endpoint.ack(transport, body, self.encoding)
                msg = Message(body["name"], self._definitions.get(body["name"]), body.get("id"))
                msg.loadAttrs(list(body["attrs"][1]))
            except (SeproxyError, TypeError, AttributeError) as exc:
                log.debug("message connection ended: %s", exc)
                break
            for callback in self._callbacks.get(msg.getName(), []) + self._callbacks.get("*", []):
                try:
                    callback(msg)
                except Exception:  # a callback must not kill the reader
                    log.exception("message callback failed")
        if transport is self._transport:
            self._transport = None
            transport.close()
        for callback in self._on_disconnect:
            try:
                callback(self)
            except Exception:
                log.exception("disconnect callback failed")
