"""seproxy: a wire-compatible DISET framework and the StorageElementProxy service.

The package version is what ``ping`` reports as ``version`` unless the
configuration overrides it (DIRAC clients only display it).
"""

__version__ = "0.1.0"
