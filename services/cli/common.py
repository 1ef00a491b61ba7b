"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from shared.config import Config, load_config
from shared.log import setup_logging


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: $KXFEED_CONFIG, else config/default.toml: simulator + SQLite)",
    )
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of human-readable lines")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override [log] level")


def load(args: argparse.Namespace) -> Config:
    """Load config and set up logging as the options say."""
    cfg = load_config(args.config)
    setup_logging(args.log_level or cfg.log.level, json=args.log_json or cfg.log.json)
    return cfg


def subcommand(sub: Any, name: str, doc: str | None, **kw: Any) -> argparse.ArgumentParser:
    """A sub-parser whose help and description come from the command module's docstring."""
    text = (doc or "").strip()
    summary = text.partition("\n")[0]
    return sub.add_parser(
        name,
        help=summary,
        description=text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kw,
    )
