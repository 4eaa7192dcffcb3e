"""Storage plugins: discovery, and the built-in plugins (File, S3, XROOT, DIP, HTTPS) below.

The contract a plugin implements is :mod:`seproxy.storage.plugin_api` (its names are
re-exported here).

Discovery
=========

``load_plugin("File")`` returns the class for a protocol section's
``PluginName``: built-ins first (File, S3, XROOT = GFAL2_XROOT, DIP, HTTPS =
GFAL2_HTTPS), then the Python entry points of group ``seproxy.storage_plugins`` (``name = "pkg.module:Class"``), so
a site ships its own backend as a separate package.
"""

from __future__ import annotations

import errno
import importlib
from importlib.metadata import entry_points

from seproxy.errors import StorageError
from seproxy.storage.plugin_api import (
    DISK_STATUS,
    ItemFailed,
    StorageBase,
    WithFailures,
    failure_reason,
    local_files,
    metadata,
    transfer_tree,
)

ENTRY_POINT_GROUP = "seproxy.storage_plugins"

BUILTIN_PLUGINS: dict[str, str] = {
    "File": "seproxy.storage.plugins.file:FileStorage",
    "S3": "seproxy.storage.plugins.s3:S3Storage",
    "XROOT": "seproxy.storage.plugins.xroot:XROOTStorage",
    "DIP": "seproxy.storage.plugins.dip:DIPStorage",
    "HTTPS": "seproxy.storage.plugins.https:HTTPSStorage",
    # DIRAC's names for its gfal2-based plugins: a site's sections work unchanged
    "GFAL2_XROOT": "seproxy.storage.plugins.xroot:GFAL2XROOTStorage",
    "GFAL2_HTTPS": "seproxy.storage.plugins.https:GFAL2HTTPSStorage",
}


def load_plugin(plugin_name: str) -> type[StorageBase]:
    """The plugin class for ``PluginName``: built-ins, then entry points."""
    target = BUILTIN_PLUGINS.get(plugin_name)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == plugin_name:
                target = ep.value
                break
    if target is None:
        raise StorageError(
            f"No storage plugin named {plugin_name!r} (built-ins: "
            f"{', '.join(BUILTIN_PLUGINS)}; entry point group {ENTRY_POINT_GROUP})",
            errno=errno.ENOENT,
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr or f"{plugin_name}Storage")
    except (ImportError, AttributeError) as exc:
        raise StorageError(
            f"Failed to load storage plugin {plugin_name!r} from {target}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, StorageBase)):
        raise StorageError(
            f"Storage plugin {plugin_name!r} ({target}) is not a StorageBase subclass"
        )
    return cls


__all__ = [
    "BUILTIN_PLUGINS",
    "DISK_STATUS",
    "ENTRY_POINT_GROUP",
    "ItemFailed",
    "StorageBase",
    "WithFailures",
    "failure_reason",
    "load_plugin",
    "local_files",
    "metadata",
    "transfer_tree",
]
