"""The StorageElementProxy service: handler, cache, namespaces, catalogue, credentials.

``StorageElementProxyHandler``, ``initializeStorageElementProxyHandler`` and
``purgeCacheDirectory`` (DIRAC API) are importable from here (loaded on first use).
This class starts no HTTP front of its own: ``seproxy.cli.wiring.StorageElementProxyHandler``
is the one with :mod:`seproxy.http` plugged in (what ``seproxy serve`` runs).
"""

from __future__ import annotations

from typing import Any

_EXPORTS = ("StorageElementProxyHandler", "initializeStorageElementProxyHandler",
            "purgeCacheDirectory", "gRegister")


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from seproxy.handler import storage_element_proxy

        return getattr(storage_element_proxy, name)
    raise AttributeError(f"module 'seproxy.handler' has no attribute {name!r}")


__all__ = list(_EXPORTS)
