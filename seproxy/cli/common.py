"""What ``seproxy serve`` and the client subcommands share: the data directory, the
configuration they read, the proxy they present, and result/JSON helpers.

The data directory (``--data-dir``, default ``~/.seproxy``) fills the ``@DATADIR@``
placeholder of the embedded ``default.cfg``; ``serve`` creates a development PKI,
a user proxy and a ``dev.cfg`` (the Registry entries of that PKI) there, which the
client commands read back, so the commands ``serve`` prints work as printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
    """``--data-dir``, ``-c``, ``-o``, ``-d`` accepted after the subcommand too."""
    parser.add_argument("--data-dir", metavar="DIR",
                        help="seproxy data directory: dev PKI, proxy, cache, File SE "
                        "(default ~/.seproxy)")
    parser.add_argument("-c", "--cfg", dest="sub_cfg_files", action="append", default=[],
                        metavar="FILE", help="extra configuration file (may be repeated)")
    parser.add_argument("-o", "--option", dest="sub_options", action="append", default=[],
                        metavar="/Path=value", help="override a configuration option")
    parser.add_argument("-d", "--debug", dest="sub_debug", action="count", default=0,
                        help="more logging")


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser().absolute() if getattr(args, "data_dir", None) \
        else default_data_dir()


def load_config(args: argparse.Namespace) -> Config:
    """Embedded default + ``<data dir>/dev.cfg`` (if any) + ``-c`` files + ``-o`` overrides."""
    directory = data_dir(args)
    files: list[str | Path] = []
    dev = directory / DEV_CFG
    if dev.is_file():
        files.append(dev)
    files += list(getattr(args, "cfg_files", []) or []) + list(getattr(args, "sub_cfg_files", []) or [])
    overrides = list(getattr(args, "options", []) or []) + list(getattr(args, "sub_options", []) or [])
    cfg = Config.load(files, overrides=overrides)
    cfg.set_placeholder("DATADIR", directory)
    if getattr(args, "debug", 0) or getattr(args, "sub_debug", 0):
        import logging

        logging.getLogger().setLevel(logging.DEBUG)
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


def to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, (datetime.datetime, datetime.date)):
            return obj.isoformat()
        if isinstance(obj, bytes):
            return obj.decode("utf-8", "replace")
        return str(obj)

    return json.dumps(value, indent=2, sort_keys=False, default=default)
