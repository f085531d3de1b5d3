"""The ``dwr`` command: argument parsing and printing only.

Every module in :mod:`dwr.cli.commands` defines ``register(subparsers)`` that adds one or more
subcommands with ``func`` set to a handler ``(args) -> int``. This is the one error boundary:

- options are checked at parse time (types in :mod:`dwr.cli.options`): one line, exit 2;
- a :class:`DwrError` from any handler, and an ``OSError`` (a path the user gave) or a
  ``MemoryError``, become one line on stderr and exit code 2;
- dwr's own warnings (:class:`DwrWarning`) print as one ``dwr: warning: ...`` line;
- SIGTERM (what ``docker stop`` and ``kill`` send) raises :class:`Terminated` in the main
  thread, so every ``finally`` runs (a half-written temporary file is removed, a lock is
  released): one ``dwr: terminated`` line and exit code 143;
- anything else is a bug: one ``dwr: internal error`` line and exit code 1 (``DWR_DEBUG=1``
  shows the traceback). Never a traceback by default.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import signal
import sys
import warnings

from dwr import __version__
from dwr.errors import DwrError, DwrWarning
from dwr.files import describe_os_error


class Terminated(BaseException):
    """SIGTERM, raised where the main thread is, so cleanup runs as for Ctrl-C."""


_main_pid: int | None = None  # the process that installed the handler


def _on_sigterm(signum: int, frame: object) -> None:
    if os.getpid() != _main_pid:  # a forked child (a DataLoader worker): die as by default
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    raise Terminated()


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


def _one_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else ""


def _one_line_warnings(show):
    """``warnings.showwarning`` that prints dwr's own warnings as one line."""

    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DwrWarning):
            print(f"dwr: warning: {_one_line(message)}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad option (already printed)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    with warnings.catch_warnings(), _sigterm_as_exception():
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _run(args)


@contextlib.contextmanager
def _sigterm_as_exception():
    """SIGTERM raises :class:`Terminated` for the ``with`` block (main thread only)."""
    global _main_pid
    _main_pid = os.getpid()
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except DwrError as exc:
        print(f"dwr: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dwr: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print("dwr: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"dwr: error: cannot use{where}: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("dwr: error: out of memory; use a smaller model, input or batch", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("DWR_DEBUG"):
            raise
        print(
            f"dwr: internal error: {type(exc).__name__}: {_one_line(exc)[:300]} "
            "(please report it; DWR_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
