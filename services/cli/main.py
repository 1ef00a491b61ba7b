"""``kxfeed``: the command line. Each sub-command lives in its own module under
``services/cli/commands/`` and exposes ``register(subparsers)``; its docstring is
its help text.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from services.cli import commands
from shared.config import CONFIG_EXIT, ConfigError

EPILOG = """examples:
  kxfeed up                                # simulator + whole pipeline + SQLite (embedded default)
  kxfeed tap 'delta.' --count 5            # watch five order-book deltas as JSON lines
  kxfeed worker connector --config config/demo.toml
  kxfeed config check config/prod.toml     # validate and print the effective config

Every command takes --help."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kxfeed",
        description="Real-time market data for Kalshi: order books, trades, tickers, lifecycle - "
        "stored exactly once, watched by Prometheus.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"kxfeed: config error: {exc}", file=sys.stderr)
        return CONFIG_EXIT
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
