"""Logging of every ``seproxy`` command: level, format (text or JSON) and destination.

Command line (before or after the subcommand): ``-d`` (DEBUG), ``--log-level LEVEL``,
``--log-file FILE``, ``--log-format text|json``. ``seproxy serve`` also reads
``LogLevel``, ``LogFormat`` and ``LogFile`` from the service section; the command line
wins. A log file is opened through :class:`logging.handlers.WatchedFileHandler`,
which reopens it when logrotate has moved it away (no SIGHUP needed). Client
commands log WARNING and above unless told otherwise, ``serve`` INFO.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import logging.handlers
import sys
from typing import Any

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ access fields, exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            entry.update(access)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def add_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """The logging options (``prefix`` keeps the subcommand's copies apart)."""
    parser.add_argument("-d", "--debug", dest=f"{prefix}debug", action="count", default=0,
                        help="debug logging (same as --log-level DEBUG)")
    parser.add_argument("--log-level", dest=f"{prefix}log_level", type=str.upper, choices=LEVELS,
                        metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    parser.add_argument("--log-file", dest=f"{prefix}log_file", metavar="FILE",
                        help="append the log to FILE (reopened after logrotate moves it)")
    parser.add_argument("--log-format", dest=f"{prefix}log_format", choices=FORMATS,
                        metavar="FORMAT", help="text (default) or json: one JSON object per line")


def chosen(args: argparse.Namespace, name: str) -> Any:
    """The subcommand's value of a logging option, else the global one."""
    return getattr(args, f"sub_{name}", None) or getattr(args, name, None)


def configure(level: str | int = "WARNING", fmt: str = "text", file: str | None = None) -> None:
    """(Re)configure the root logger: one handler, the given level and format."""
    handler: logging.Handler = (logging.handlers.WatchedFileHandler(file, encoding="utf-8")
                                if file else logging.StreamHandler(sys.stderr))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


def configure_from_args(args: argparse.Namespace, default_level: str) -> bool:
    """Logging from the command line; True when it asked for debug output."""
    debug = bool(chosen(args, "debug"))
    level = "DEBUG" if debug else chosen(args, "log_level") or default_level
    configure(level, chosen(args, "log_format") or "text", chosen(args, "log_file"))
    return level == "DEBUG"


def configure_from_config(args: argparse.Namespace, cfg: Any, section: str) -> None:
    """``serve``: ``LogLevel``/``LogFormat``/``LogFile`` of ``section`` under the command line."""
    level = "DEBUG" if chosen(args, "debug") else chosen(args, "log_level") or \
        str(cfg.getValue(f"{section}/LogLevel", "INFO") or "INFO").upper()
    fmt = chosen(args, "log_format") or str(cfg.getValue(f"{section}/LogFormat", "text") or "text")
    file = chosen(args, "log_file") or cfg.getValue(f"{section}/LogFile", "") or None
    if level not in LEVELS:
        from seproxy.errors import ConfigError
        raise ConfigError(f"{section}/LogLevel: {level!r} is not one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        from seproxy.errors import ConfigError
        raise ConfigError(f"{section}/LogFormat: {fmt!r} is not one of {', '.join(FORMATS)}")
    configure(level, fmt, file)
