"""What the per-connection code of the server sees of its service (typed seams).

:class:`ServiceContext` is what a handler class reaches through ``cls._rh_context``;
:class:`ServingService` is what the worker, the reuse sessions and the message broker
use of the :class:`~seproxy.rpc.server.service.Service` that runs them (a Protocol, so
those modules need not import the service module that starts them); ``ActionServer``
is the signature of an action-table entry.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from seproxy.config import Config, Registry
from seproxy.rpc.connection import Connection
from seproxy.rpc.server.auth import AuthManager
from seproxy.rpc.server.connections import ConnectionCaps, ConnectionRegistry, FrameSlots, MethodLimits
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.watchdog import Watchdog
from seproxy.rpc.version import DIRAC_9_1, DiracCompat

#: Serves one accepted action of a table type (``FileTransfer``):
#: ``(handler, action name, connection, service encoding) -> final S_OK/S_ERROR answer``.
ActionServer = Callable[[RequestHandler, str, Connection, "str | None"], dict]


@dataclass
class ServiceContext:
    """What a handler class of one service reaches through ``cls._rh_context``."""

    cfg: Config
    service_info: dict
    connections: ConnectionRegistry
    limits: MethodLimits
    auth: AuthManager
    registry: Registry
    start_time: datetime.datetime
    msg_broker: Any = None
    monitor: Any = None
    stats: dict = field(default_factory=lambda: {"accepted": 0, "rejected": 0, "banned": 0, "served": 0})
    compat: DiracCompat = DIRAC_9_1


class ServingService(Protocol):
    """The parts of a running ``Service`` its per-connection code uses."""

    name: str
    cfg: Config
    encoding: str | None
    context: ServiceContext
    handler_class: type[RequestHandler]
    actions: Mapping[str, ActionServer]
    action_types: tuple[str, ...]
    handshake_timeout: float
    request_timeout: float
    transfer_window_timeout: float
    session_idle_timeout: float
    max_waiting: int
    watchdog: Watchdog
    caps: ConnectionCaps
    large_frames: FrameSlots

    @property
    def sessions_available(self) -> bool: ...

    @property
    def stopping(self) -> bool: ...

    def option(self, name: str, default: Any = None) -> Any: ...

    def park_session(self, session: Any) -> None: ...
