"""``kxfeed``: the command line. Each sub-command lives in its own module under
``services/cli/commands/`` and exposes ``register(subparsers)``; its docstring is
its help text.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import pkgutil
import sys
from collections.abc import Sequence
from typing import NoReturn

from services.cli import commands
from shared.config import CONFIG_EXIT, ConfigError

EPILOG = """examples:
  kxfeed up                                # simulator + whole pipeline + SQLite (embedded default)
  kxfeed tap 'delta.' --count 5            # watch five order-book deltas as JSON lines
  kxfeed worker connector --config config/demo.toml
  kxfeed config check config/prod.toml     # validate and print the effective config

Every command takes --help."""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake answered in one line (the usage block is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with ``only``, just that command's module (importing every command pulls
    in SQLAlchemy, alembic and more: seconds on a busy machine, for a one-second preflight)."""
    parser = Parser(
        prog="kxfeed",
        description="Real-time market data for Kalshi: order books, trades, tickers, lifecycle - "
        "stored exactly once, watched by Prometheus.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kxfeed {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in command_names():
        if only is None or name == only:
            importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def command_names() -> list[str]:
    """One module per command, named like it."""
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__))


def _chosen(argv: Sequence[str]) -> str | None:
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in command_names() else None


def version() -> str:
    try:
        return importlib.metadata.version("kxfeed")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


#: Exit status of a process a closed pipe ended (128 + SIGPIPE), as `yes | head` reports it.
EXIT_BROKEN_PIPE = 141


def _silence_stdout() -> None:
    # The reader went away (`kxfeed status | head`): point stdout at /dev/null so the
    # interpreter's final flush does not raise a second BrokenPipeError on the way out.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_chosen(argv))
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ConfigError as exc:
        print(f"kxfeed: config error: {exc}", file=sys.stderr)
        return CONFIG_EXIT
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
