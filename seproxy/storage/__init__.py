"""seproxy.storage: the StorageElement facade and its plugins.

``StorageElement`` (element.py) is DIRAC's facade over the plugins of one
storage element; ``StorageCredentials`` (credentials.py) carries the caller's
identity per call; ``plugins`` holds the ``StorageBase`` contract, discovery
(``load_plugin``) and the built-in backends File, S3, XROOT and DIP.
"""

from seproxy.storage.credentials import StorageCredentials
from seproxy.storage.element import StorageElement

__all__ = ["StorageCredentials", "StorageElement"]
