"""Client side of DISET: ``BaseClient``/``RPCClient`` (:mod:`.base`), connection reuse
(:mod:`.reuse`) and ``MessageClient`` (:mod:`.msgclient`).

``from seproxy.rpc.client import RPCClient`` keeps working (the public DIRAC-style path).
"""

from seproxy.rpc.client.base import BaseClient, RPCClient

__all__ = ["BaseClient", "RPCClient"]
