"""Find the handler class of a service from configuration (PROTOCOL.md 7.1, 9.2).

Resolution, first match wins, for service ``System/Service``:

1. ``HandlerPath`` in the service section: a ``.py`` file (absolute, or relative to
   the directory of the first configuration file / the working directory), or a DIRAC
   style module path such as ``MySystem/Service/MyHandler.py``
   (-> module ``MySystem.Service.MyHandler``) importable from ``sys.path``;
2. ``Module`` in the service section names another service whose handler is used
   (DIRAC's "load name": one handler served under several names);
3. the built-in handlers: ``builtins`` given by whoever builds the Service (the
   StorageElementProxy is added by the layer that knows it, ``seproxy.cli.wiring``),
   then the framework's own (``BUILTIN_HANDLERS``);
4. DIRAC's convention ``<System>System.Service.<Service>Handler`` on ``sys.path``
   (handlers of an extension package written by users).

In the module, the class is ``<Service>Handler`` (or ``<module basename>``), else the
only ``RequestHandler`` subclass defined there.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from seproxy.config import schema
from seproxy.errors import ConfigError
from seproxy.rpc.server.handler import RequestHandler

#: Services the framework implements itself: name -> handler class.
BUILTIN_HANDLERS: dict[str, type[RequestHandler]] = {
    "Framework/Echo": RequestHandler,
}


def _module_from_file(path: Path) -> ModuleType:
    name = f"seproxy_user_handlers.{path.stem}_{abs(hash(str(path))) & 0xFFFFFF:x}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"Cannot load handler file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"Cannot import handler file {path}: {exc}") from exc
    return module


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"Cannot import handler module {module_name}: {exc}") from exc


def _pick_class(module: ModuleType, service: str) -> type[RequestHandler]:
    for candidate in (f"{service}Handler", module.__name__.rsplit(".", 1)[-1].split("_")[0]):
        cls = getattr(module, candidate, None)
        if isinstance(cls, type) and issubclass(cls, RequestHandler):
            return cls
    found = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, RequestHandler) and obj.__module__ == module.__name__
    ]
    if len(found) == 1:
        return found[0]
    raise ConfigError(f"No handler class {service}Handler in module {module.__name__}")


def _from_handler_path(handler_path: str, service: str, cfg: Any) -> tuple[type[RequestHandler], ModuleType]:
    candidates = [Path(handler_path)]
    files = list(getattr(cfg, "files", []) or [])
    if files:
        candidates.append(Path(files[0]).parent / handler_path)
    for path in candidates:
        if path.suffix == ".py" and path.is_file():
            module = _module_from_file(path.resolve())
            return _pick_class(module, service), module
    dotted = handler_path[:-3] if handler_path.endswith(".py") else handler_path
    module = _import(dotted.strip("/").replace("/", "."))
    return _pick_class(module, service), module


def load_handler(cfg: Any, service_name: str, builtins: Mapping[str, type[RequestHandler]] | None = None,
                 _seen: frozenset = frozenset()) -> tuple[type[RequestHandler], ModuleType | None, str]:
    """``(handler class, its module, load name)`` for ``System/Service``; ``builtins``:
    service name -> handler class, looked up before the framework's own."""
    if service_name in _seen or "/" not in service_name:
        raise ConfigError(f"Invalid or circular handler reference {service_name!r}")
    system, service = service_name.split("/", 1)
    section = cfg.service_section(service_name)
    declared = schema.service_schema(service_name)
    handler_path = declared.value(cfg, "HandlerPath", section)
    if handler_path:
        cls, module = _from_handler_path(handler_path, service, cfg)
        return cls, module, service_name
    load_name = declared.value(cfg, "Module", section) or service_name
    if "/" not in load_name:
        load_name = f"{system}/{load_name}"
    if load_name != service_name:
        cls, module, _ = load_handler(cfg, load_name, builtins, _seen | {service_name})
        return cls, module, load_name
    known = {**BUILTIN_HANDLERS, **(builtins or {})}
    if service_name in known:
        cls = known[service_name]
        return cls, sys.modules.get(cls.__module__), service_name
    module = _import(f"{system}System.Service.{service}Handler")
    return _pick_class(module, service), module, service_name
