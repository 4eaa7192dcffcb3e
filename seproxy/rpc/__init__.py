"""DISET service framework: Service, RequestHandler, AuthManager, RPCClient (lazy imports).

``from seproxy.rpc import RPCClient, RequestHandler, Service, ServiceReactor`` ...
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RequestHandler": "seproxy.rpc.server.handler",
    "AuthManager": "seproxy.rpc.server.auth",
    "Service": "seproxy.rpc.server.service",
    "ServiceReactor": "seproxy.rpc.server.reactor",
    "BaseClient": "seproxy.rpc.client.base",
    "RPCClient": "seproxy.rpc.client.base",
    "MessageClient": "seproxy.rpc.client.msgclient",
}

__all__ = ["AuthManager", "BaseClient", "MessageClient", "RPCClient", "RequestHandler", "Service",
           "ServiceReactor"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seproxy.rpc' has no attribute {name!r}")
