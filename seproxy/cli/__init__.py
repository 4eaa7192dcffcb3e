"""The ``seproxy`` command line: one entry point, one module per subcommand group.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``register(subparsers)`` which
adds its subcommands and sets ``func`` (called with the parsed namespace, returns
an exit code). Failures print one ``ERROR <message>`` line and exit with 2, as
DIRAC's scripts do - never a traceback (``-d`` adds it for a bug report).
``-o /Section/Option=value``, ``-c FILE``, ``-d`` are accepted before and after the
subcommand. Shell completion: ``eval "$(register-python-argcomplete seproxy)"``.
"""
# PYTHON_ARGCOMPLETE_OK

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from seproxy import __version__
from seproxy.cli import logs
from seproxy.errors import SeproxyError

#: Subcommand modules, imported lazily so that a missing optional dependency
#: only breaks the subcommands that need it.
SUBCOMMAND_MODULES = (
    "seproxy.cli.serve",
    "seproxy.cli.client",
    "seproxy.cli.pki",
)


def version_text() -> str:
    """seproxy's own version (``ping`` answers DIRAC's, which clients check)."""
    from seproxy.rpc.version import DIRAC_VERSION

    return f"seproxy {__version__} (speaks DISET as DIRAC {DIRAC_VERSION})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seproxy",
        description="DISET StorageElementProxy service and its DIRAC-compatible tools.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    parser.add_argument(
        "-o", "--option", dest="options", action="append", default=[], metavar="/Path=value",
        help="override a configuration option, e.g. -o /Systems/DataManagement/Services/"
        "StorageElementProxy/Port=9139 (may be repeated)",
    )
    parser.add_argument("-c", "--cfg", dest="cfg_files", action="append", default=[],
                        metavar="FILE", help="extra configuration file (may be repeated)")
    logs.add_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("seproxy.cli."):
                continue  # subcommand group not written yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        import argcomplete
    except ImportError:  # pragma: no cover - a dependency; completion is a convenience
        pass
    else:
        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    try:
        debug = logs.configure_from_args(args, "INFO" if args.command == "serve" else "WARNING")
    except OSError as exc:
        print(f"ERROR cannot open the log file: {exc}", file=sys.stderr)
        return 2
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except SeproxyError as exc:
        return _error(str(exc), debug)
    except KeyboardInterrupt:
        print("ERROR interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}", debug)
    except Exception as exc:  # noqa: BLE001 - one ERROR line, never a traceback
        return _error(f"unexpected {type(exc).__name__}: {exc} (run with -d for details)", debug)


def _error(message: str, debug: bool) -> int:
    if debug:  # called from the except clauses of main: the exception is current
        logging.getLogger("seproxy.cli").debug("failure", exc_info=sys.exc_info())
    print(f"ERROR {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
