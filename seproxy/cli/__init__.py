"""The ``seproxy`` command line: one entry point, one module per subcommand group.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``register(subparsers)`` which
adds its subcommands and sets ``func`` (called with the parsed namespace, returns
an exit code). Failures print ``ERROR <message>`` and exit with 2, as DIRAC's
scripts do. ``-o /Section/Option=value`` and ``-d`` are global options.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from seproxy import __version__
from seproxy.errors import SeproxyError

#: Subcommand modules, imported lazily so that a missing optional dependency
#: only breaks the subcommands that need it.
SUBCOMMAND_MODULES = (
    "seproxy.cli.serve",
    "seproxy.cli.client",
    "seproxy.cli.pki",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seproxy",
        description="DISET StorageElementProxy service and its DIRAC-compatible tools.",
    )
    parser.add_argument("--version", action="version", version=f"seproxy {__version__}")
    parser.add_argument(
        "-o", "--option", dest="options", action="append", default=[], metavar="/Path=value",
        help="override a configuration option, e.g. -o /Systems/DataManagement/Services/"
        "StorageElementProxy/Port=9139 (may be repeated)",
    )
    parser.add_argument("-c", "--cfg", dest="cfg_files", action="append", default=[],
                        metavar="FILE", help="extra configuration file (may be repeated)")
    parser.add_argument("-d", "--debug", action="count", default=0, help="more logging")
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
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except SeproxyError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
