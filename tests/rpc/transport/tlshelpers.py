"""Configurations and a client round trip for the TLS transport tests."""

from __future__ import annotations

from pathlib import Path

from seproxy.config import Config
from seproxy.errors import SeproxyError
from seproxy.rpc import transport

BACKENDS = ["pyopenssl", "m2crypto"]


def tls_cfg(registry_cfg: str, *, cert: Path, key: Path, ca_dir: Path, backend: str,
            check_crls: str = "no", extra: str = "") -> Config:
    text = f"""DIRAC
{{
  VirtualOrganization = dirac
  Security
  {{
    CertFile = {cert}
    KeyFile = {key}
    CALocation = {ca_dir}
    TLSBackend = {backend}
    CheckCRLs = {check_crls}
    {extra}
  }}
}}
{registry_cfg}"""
    return Config.from_text(text, use_default=False)


def roundtrip(port: int, cfg: Config, host: str = "127.0.0.1", **kwargs) -> tuple[bool, str]:
    """Connect, echo one frame; (True, "") or (False, the error text of the client side)."""
    try:
        conn = transport.connect("dips", host, port, cfg=cfg, timeout=5, **kwargs)
    except SeproxyError as exc:
        return False, str(exc)
    try:
        conn.settimeout(5)
        conn.send_frame(b"ping")
        if conn.receive_frame() != b"ping":
            return False, "echo mismatch"
        return True, ""
    except SeproxyError as exc:
        return False, str(exc)
    finally:
        conn.close()
