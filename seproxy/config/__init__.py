"""seproxy configuration: the CFG tree (``Config``), the ``/Registry`` view (``Registry``)
and the declaration of every option seproxy reads (``seproxy.config.schema``).

The primary API is an explicit ``Config`` object passed to whoever needs it.
``get_config()``/``set_config()`` hold a process-wide instance for DIRAC-style
code that has no object to pass (the equivalent of DIRAC's ``gConfig``).
"""

from __future__ import annotations

import threading

from seproxy.config.cfg import (
    Config,
    as_bool,
    as_list,
    cast_value,
    default_config_path,
    join_path,
    parse_override,
    split_path,
)
from seproxy.config.registry import Registry

_lock = threading.Lock()
_current: Config | None = None


def get_config() -> Config:
    """The process-wide Config (the embedded default until ``set_config`` is called)."""
    global _current
    with _lock:
        if _current is None:
            _current = Config.load()
        return _current


def set_config(cfg: Config | None) -> None:
    """Install ``cfg`` as the process-wide Config (``None`` resets to the default)."""
    global _current
    with _lock:
        _current = cfg


__all__ = [
    "Config",
    "Registry",
    "default_config_path",
    "get_config",
    "set_config",
    "as_bool",
    "as_list",
    "cast_value",
    "join_path",
    "split_path",
    "parse_override",
]
