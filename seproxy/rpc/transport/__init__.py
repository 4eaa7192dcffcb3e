"""Transports: ``listen()`` / ``connect()`` for ``dip`` (plain TCP) and ``dips`` (TLS).

The TLS backend is chosen by ``/DIRAC/Security/TLSBackend``: ``pyopenssl``
(default) or ``m2crypto`` (extra ``seproxy[m2crypto]``).  Both behave the same;
see ``tls_openssl`` for the TLS options they read.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType
from typing import Any

from seproxy.config import schema
from seproxy.errors import ConfigError
from seproxy.rpc.transport import plain, tlsbase
from seproxy.rpc.transport.base import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_RPC_TIMEOUT,
    Listener,
    Transport,
)

__all__ = [
    "DEFAULT_CONNECTION_TIMEOUT", "DEFAULT_RPC_TIMEOUT", "Listener", "Transport",
    "connect", "listen", "tls_backend",
]

BACKEND_OPTION = "/DIRAC/Security/TLSBackend"
_BACKENDS = {
    "pyopenssl": "seproxy.rpc.transport.tls_openssl",
    "openssl": "seproxy.rpc.transport.tls_openssl",
    "m2crypto": "seproxy.rpc.transport.tls_m2crypto",
}


_LOADED: dict[str, ModuleType] = {}


def tls_backend(cfg: Any) -> ModuleType:
    """The TLS backend module configured in ``cfg`` (pyOpenSSL unless set otherwise)."""
    name = "pyopenssl"
    if cfg is not None:
        name = schema.value(cfg, BACKEND_OPTION)
    module = _LOADED.get(name)
    if module is not None:
        return module
    if name not in _BACKENDS:
        raise ConfigError(f"{BACKEND_OPTION} = {name!r}: use one of pyopenssl, m2crypto")
    try:
        module = _LOADED[name] = import_module(_BACKENDS[name])
        return module
    except ImportError as exc:
        raise ConfigError(f"TLS backend {name} is not available: {exc}"
                          " (install seproxy[m2crypto] for M2Crypto)") from exc


def _check_protocol(protocol: str) -> str:
    protocol = protocol.lower()
    if protocol not in ("dip", "dips"):
        raise ConfigError(f"Unknown protocol {protocol!r}: expected dips or dip")
    return protocol


def listen(protocol: str, host: str, port: int, *, cfg: Any, backlog: int = 128) -> Listener:
    """A listener on ``host:port`` ("" = all addresses, port 0 = any free port).

    ``accept()`` returns a transport whose TLS handshake is still to be done
    with ``handshake(timeout)`` in the worker thread.
    """
    if _check_protocol(protocol) == "dip":
        return plain.listen(host, port, backlog=backlog)
    return tlsbase.listen(tls_backend(cfg).BACKEND, host, port, cfg=cfg, backlog=backlog)


def connect(protocol: str, host: str, port: int, *, cfg: Any,
            timeout: float = DEFAULT_CONNECTION_TIMEOUT, proxy_location: str | None = None,
            use_certificates: bool = False, skip_ca_check: bool = False,
            server_hostname: str | None = None, keepalive_lapse: float = 0.0) -> Transport:
    """A connected transport, TLS handshake done (``timeout`` bounds connect + handshake).

    Afterwards the transport's timeout is ``DEFAULT_RPC_TIMEOUT``; callers set
    their RPC timeout with ``settimeout``.  ``keepalive_lapse`` > 0 makes the
    transport ping the server after that many idle seconds while it waits.
    """
    if _check_protocol(protocol) == "dip":
        return plain.connect(host, port, timeout=timeout, keepalive_lapse=keepalive_lapse)
    return tlsbase.connect(
        tls_backend(cfg).BACKEND, host, port, cfg=cfg, timeout=timeout, proxy_location=proxy_location,
        use_certificates=use_certificates, skip_ca_check=skip_ca_check,
        server_hostname=server_hostname, keepalive_lapse=keepalive_lapse)
