"""seproxy as a DIRAC extension: the package DIRAC searches for ``Resources.*`` modules.

DIRAC (8.0 and 9.x) finds extensions through the ``dirac`` entry-point group; the
entry point's module names the extension (its top-level package, here ``seproxy``)
and its function returns the extension's metadata. DIRAC's ``ObjectLoader`` then
tries ``<extension>.Resources.Storage.ProxyStorage`` before
``DIRAC.Resources.Storage.ProxyStorage``, whatever the priority, so seproxy's plugin
replaces DIRAC 8.0's broken one and fills the gap in DIRAC 9.x.

The priority is below DIRAC's (0): where DIRAC ranks extensions for anything else
(console scripts, the version it reports, a site's main extension) DIRAC and a
VO's own extension stay first. Nothing here imports DIRAC; it is imported by
DIRAC's extension discovery in every DIRAC process where seproxy is installed.
"""

from __future__ import annotations

from typing import Any

#: below DIRAC's 0 and unlike it, so DIRAC prints no "multiple extensions" warning
PRIORITY = -10


def extension_metadata() -> dict[str, Any]:
    """What DIRAC's ``extensionsByPriority``/``getExtensionMetadata`` read."""
    return {"priority": PRIORITY, "primary_extension": False, "setups": {}}
