"""What ``seproxy serve`` and the client subcommands share: the data directory, the
configuration they read, the proxy they present, and result/JSON helpers.

Two kinds of configuration (:func:`load_config`):

* no ``-c``: the development site, the embedded ``seproxy/config/dev-site.cfg`` (plus
  ``<data dir>/dev.cfg`` if the user wrote one); ``serve`` creates its PKI and a user
  proxy under the data directory (``--data-dir``, default ``~/.seproxy``), and its
  placeholders are filled from there, so the commands ``serve`` prints work as printed;
* ``-c FILE``: a site configuration, those files alone over the defaults of
  ``seproxy.config.schema``; nothing of the development site (SE-LOCAL, dev PKI,
  its Registry entries) is merged in.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

from seproxy.config import Config
from seproxy.errors import SeproxyError
from seproxy.returnvalues import unwrap

SERVICE = "DataManagement/StorageElementProxy"
DEV_CFG = "dev.cfg"
DEV_PROXY = "proxy.pem"


def default_data_dir() -> Path:
    return Path(os.path.expanduser("~/.seproxy"))


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--data-dir``, ``-c``, ``-o`` and the logging options after the subcommand too."""
    parser.add_argument("--data-dir", metavar="DIR",
                        help="seproxy data directory: dev PKI, proxy, cache, File SE "
                        "(default ~/.seproxy)")
    parser.add_argument("-c", "--cfg", dest="sub_cfg_files", action="append", default=[],
                        metavar="FILE", help="extra configuration file (may be repeated)")
    parser.add_argument("-o", "--option", dest="sub_options", action="append", default=[],
                        metavar="/Path=value", help="override a configuration option")
    from seproxy.cli import logs

    logs.add_options(parser, "sub_")


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser().absolute() if getattr(args, "data_dir", None) \
        else default_data_dir()


def site_files(args: argparse.Namespace) -> list[str]:
    """The ``-c`` files (before and after the subcommand); none: the development site."""
    return [str(f) for f in list(getattr(args, "cfg_files", []) or []) + list(getattr(args, "sub_cfg_files", []) or [])]


def fill_dev_placeholders(cfg: Config, directory: Path) -> None:
    """``@DATADIR@``, and the DNs of the development PKI under it once it exists."""
    from seproxy.security.pki import DevPKI
    from seproxy.security.x509 import X509Chain

    cfg.set_placeholder("DATADIR", directory)
    dev = DevPKI(directory / "pki")
    for name, path, attribute in (("DEVUSERDN", dev.user_cert, "identity_dn"),
                                  ("DEVHOSTDN", dev.host_cert, "subject_dn")):
        if path.is_file():
            try:
                cfg.set_placeholder(name, getattr(X509Chain.from_file(path), attribute))
            except (SeproxyError, OSError, ValueError):
                pass  # unreadable: the entry stays absent until `serve` remakes the PKI


def load_config(args: argparse.Namespace) -> Config:
    """The development site (no ``-c``) or the site files; then the ``-o`` overrides."""
    directory = data_dir(args)
    files = site_files(args)
    overrides = list(getattr(args, "options", []) or []) + list(getattr(args, "sub_options", []) or [])
    if files:
        cfg = Config.load(files, use_default=False, overrides=overrides)
        cfg.set_placeholder("DATADIR", directory)
    else:
        dev = directory / DEV_CFG
        cfg = Config.load([dev] if dev.is_file() else [], overrides=overrides)
        fill_dev_placeholders(cfg, directory)
    return cfg


def proxy_for(args: argparse.Namespace) -> str | None:
    """``--proxy``; else DIRAC's proxy location if one exists; else the data dir's proxy."""
    if getattr(args, "proxy", None):
        return str(args.proxy)
    from seproxy.security import locations

    try:
        return str(locations.proxy_location())
    except SeproxyError:
        pass
    own = data_dir(args) / DEV_PROXY
    return str(own) if own.is_file() else None


def check(result: Any, what: str = "") -> Any:
    """The ``Value`` of an S_OK; an S_ERROR becomes a SeproxyError (exit 2, ``ERROR ...``)."""
    reply = unwrap(result)
    if not reply.valid:
        raise SeproxyError(f"{what}unexpected answer {result!r}")
    if not reply.ok:
        raise SeproxyError(f"{what}{result.get('Message', 'failed')}")
    return reply.value


def emit(args: argparse.Namespace, value: Any, lines: list[str], *, stream: Any = None) -> None:
    """JSON (``--json``) or the human lines."""
    out = stream or sys.stdout
    if getattr(args, "json", False):
        print(to_json(value), file=out)
    else:
        for line in lines:
            print(line, file=out)


def to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, (datetime.datetime, datetime.date)):
            return obj.isoformat()
        if isinstance(obj, bytes):
            return obj.decode("utf-8", "replace")
        return str(obj)

    return json.dumps(value, indent=2, sort_keys=False, default=default)
