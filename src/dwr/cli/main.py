"""The ``dwr`` command: argument parsing and printing only.

Every module in :mod:`dwr.cli.commands` defines ``register(subparsers)`` that adds one or more
subcommands with ``func`` set to a handler ``(args) -> int``. A :class:`DwrError` from any
handler becomes one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from dwr import __version__
from dwr.errors import DwrError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: one line, exit 2
        self.exit(2, f"dwr: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    from dwr.cli import commands

    parser = _Parser(prog="dwr", description="Binary neural networks by Depth-Width Reshaping.")
    parser.add_argument("--version", action="version", version=f"dwr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"dwr.cli.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DwrError as exc:
        print(f"dwr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dwr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
