"""Where credentials and CAs are found, in DIRAC's order (PROTOCOL 4.2).

Environment variables are only *read* (from ``environ``, default ``os.environ``);
nothing here ever writes to the environment.

===========================  =================================================================
what                         first that applies
===========================  =================================================================
CA directory                 ``<Grid-Security>/certificates`` (dir exists); ``CALocation``
                             (dir exists); ``$X509_CERT_DIR`` (taken as is);
                             ``<root>/etc/grid-security/certificates``;
                             ``/etc/grid-security/certificates``
VOMS directory               ``<Grid-Security>/vomsdir``; ``$X509_VOMS_DIR``;
                             ``/etc/grid-security/vomsdir``
host certificate / key       ``$DIRAC_X509_HOST_CERT`` / ``_KEY`` (file exists);
                             ``/DIRAC/Security/CertFile`` / ``KeyFile``;
                             ``{server,host,dirac,service}{cert,key}.pem`` in
                             ``<Grid-Security>``, then ``<root>/etc/grid-security``
proxy (to use)               ``proxyLocation`` argument; ``$GRID_PROXY_FILE``,
                             ``$X509_USER_PROXY`` (file exists); ``/tmp/x509up_u<uid>``
                             (file exists)
proxy (to write)             ``$GRID_PROXY_FILE``; ``$X509_USER_PROXY``; ``/tmp/x509up_u<uid>``
user certificate / key       ``$X509_USER_CERT`` / ``$X509_USER_KEY`` (file exists);
                             ``~/.globus/usercert.pem`` / ``userkey.pem``
===========================  =================================================================

``<Grid-Security>`` is ``/DIRAC/Security/Grid-Security``; ``<root>`` the DIRAC root:
``$DIRAC`` if set, else the Python installation prefix (``sys.base_prefix``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seproxy.errors import AuthError, ConfigError

SECURITY = "/DIRAC/Security"
SYSTEM_GRID_SECURITY = Path("/etc/grid-security")
_HOST_PREFIXES = ("server", "host", "dirac", "service")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _option(cfg: Any, name: str) -> str | None:
    if cfg is None:
        return None
    return cfg.value(f"{SECURITY}/{name}") or None  # typed by seproxy.config.schema


def dirac_root(environ: Mapping[str, str] | None = None) -> Path:
    return Path(_env(environ).get("DIRAC") or sys.base_prefix)


def ca_directory(cfg: Any = None, environ: Mapping[str, str] | None = None) -> Path:
    """The OpenSSL hashed CA directory DIRAC would use; ``ConfigError`` if there is none."""
    env = _env(environ)
    grid_security = _option(cfg, "Grid-Security")
    if grid_security and (Path(grid_security) / "certificates").is_dir():
        return Path(grid_security) / "certificates"
    location = _option(cfg, "CALocation")
    if location and Path(location).is_dir():
        return Path(location)
    if env.get("X509_CERT_DIR"):
        return Path(env["X509_CERT_DIR"])
    for candidate in (dirac_root(environ) / "etc/grid-security/certificates",
                      SYSTEM_GRID_SECURITY / "certificates"):
        if candidate.is_dir():
            return candidate
    raise ConfigError("no CA directory found: set /DIRAC/Security/Grid-Security or CALocation, "
                      "or $X509_CERT_DIR (or create /etc/grid-security/certificates)")


def voms_directory(cfg: Any = None, environ: Mapping[str, str] | None = None) -> Path | None:
    env = _env(environ)
    grid_security = _option(cfg, "Grid-Security")
    candidates = [Path(grid_security) / "vomsdir"] if grid_security else []
    if env.get("X509_VOMS_DIR"):
        candidates.append(Path(env["X509_VOMS_DIR"]))
    candidates.append(SYSTEM_GRID_SECURITY / "vomsdir")
    return next((c for c in candidates if c.is_dir()), None)


def host_credentials(cfg: Any = None, environ: Mapping[str, str] | None = None
                     ) -> tuple[Path, Path]:
    """(certificate, key) of the host; ``ConfigError`` if either is missing."""
    env = _env(environ)
    found: dict[str, Path] = {}
    grid_security = _option(cfg, "Grid-Security")
    directories = ([Path(grid_security)] if grid_security else []) + [
        dirac_root(environ) / "etc/grid-security"]
    for kind, variable in (("cert", "DIRAC_X509_HOST_CERT"), ("key", "DIRAC_X509_HOST_KEY")):
        if env.get(variable) and Path(env[variable]).exists():
            found[kind] = Path(env[variable])
            continue
        configured = _option(cfg, f"{kind.capitalize()}File")
        if configured:
            found[kind] = Path(configured)
            continue
        for prefix in _HOST_PREFIXES:
            hit = next((d / f"{prefix}{kind}.pem" for d in directories
                        if (d / f"{prefix}{kind}.pem").is_file()), None)
            if hit is not None:
                found[kind] = hit.resolve()
                break
    if "cert" not in found or "key" not in found:
        missing = " and ".join(k for k in ("cert", "key") if k not in found)
        raise ConfigError(f"host {missing} not found: set /DIRAC/Security/CertFile and KeyFile, "
                          "$DIRAC_X509_HOST_CERT/_KEY, or put hostcert.pem/hostkey.pem in "
                          "/DIRAC/Security/Grid-Security")
    return found["cert"], found["key"]


def default_proxy_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where a new proxy is written (no existence check)."""
    env = _env(environ)
    for variable in ("GRID_PROXY_FILE", "X509_USER_PROXY"):
        if env.get(variable):
            return Path(os.path.realpath(env[variable]))
    return Path(f"/tmp/x509up_u{os.getuid()}")


def proxy_location(proxyLocation: str | os.PathLike[str] | None = None,  # noqa: N803 DIRAC kwarg
                   environ: Mapping[str, str] | None = None) -> Path:
    """The proxy file a client presents; ``AuthError`` if none exists."""
    if proxyLocation:
        return Path(proxyLocation)
    env = _env(environ)
    for variable in ("GRID_PROXY_FILE", "X509_USER_PROXY"):
        if env.get(variable):
            path = Path(os.path.realpath(env[variable]))
            if path.is_file():
                return path
    default = Path(f"/tmp/x509up_u{os.getuid()}")
    if default.is_file():
        return default
    raise AuthError("no proxy found: pass proxyLocation, set $X509_USER_PROXY, or run "
                    "`seproxy proxy-init`")


def user_credentials(environ: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """(usercert, userkey) for making a proxy; ``AuthError`` if not found."""
    env = _env(environ)
    globus = Path(env.get("HOME") or Path.home()) / ".globus"
    found = []
    for variable, name in (("X509_USER_CERT", "usercert.pem"), ("X509_USER_KEY", "userkey.pem")):
        if env.get(variable) and Path(env[variable]).exists():
            found.append(Path(env[variable]))
        elif (globus / name).exists():
            found.append(globus / name)
        else:
            raise AuthError(f"user credential not found: set ${variable} or create {globus / name}")
    return found[0], found[1]
