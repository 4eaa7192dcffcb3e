"""What the top layer plugs together: the framework knows no service, the handler no HTTP.

* ``ACTIONS``: the action table every seproxy service gets (``FileTransfer`` is served
  by :func:`seproxy.transfer.dispatch.serve_transfer`);
* ``StorageElementProxyHandler``: the handler with its HTTP front
  (:class:`seproxy.http.server.HttpThread`) plugged in;
* ``HANDLERS``: the built-in services by name (``DataManagement/StorageElementProxy``);
* :func:`service` / :func:`reactor`: a ``Service`` / ``ServiceReactor`` with both.

``seproxy serve`` and the test fixtures build their services here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seproxy.config import Config
from seproxy.handler import storage_element_proxy as _proxy
from seproxy.http.server import HttpThread
from seproxy.rpc.server.context import ActionServer
from seproxy.rpc.server.handler import RequestHandler
from seproxy.rpc.server.reactor import ServiceReactor
from seproxy.rpc.server.service import Service
from seproxy.transfer.dispatch import serve_transfer

ACTIONS: dict[str, ActionServer] = {"FileTransfer": serve_transfer}


class StorageElementProxyHandler(_proxy.StorageElementProxyHandler):
    """The StorageElementProxy handler with its HTTP download front."""

    http_server = HttpThread


#: the module-level initialiser (DIRAC API) the framework looks up next to the class
initializeStorageElementProxyHandler = _proxy.initializeStorageElementProxyHandler

HANDLERS: dict[str, type[RequestHandler]] = {
    "DataManagement/StorageElementProxy": StorageElementProxyHandler,
}


def service(cfg: Config, name: str, handler_class: type[RequestHandler] | None = None,
            **kwargs: Any) -> Service:
    """A :class:`Service` with seproxy's built-in handlers and action table."""
    return Service(cfg, name, handler_class, handlers=HANDLERS, actions=ACTIONS, **kwargs)


def reactor(cfg: Config, names: Sequence[str], **kwargs: Any) -> ServiceReactor:
    """A :class:`ServiceReactor` with seproxy's built-in handlers and action table."""
    return ServiceReactor(cfg, names, handlers=HANDLERS, actions=ACTIONS, **kwargs)
