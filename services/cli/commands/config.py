"""Validate a config file and print the effective config (secrets redacted).

  kxfeed config check [FILE]

Applies KXFEED_<SECTION>_<KEY> environment overrides, checks every key and
type, and prints the result as TOML-like sections. Exit 2 on any error, with
the file and key named.

example:
  KXFEED_DB_URL=postgresql+asyncpg://kx@db/kx kxfeed config check config/prod.toml
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from services.cli.common import action, subcommand
from shared.config import load_config, to_toml_dict


def register(sub: Any) -> None:
    p = subcommand(sub, "config", __doc__)
    verbs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = action(
        verbs,
        "check",
        "validate and print the effective config",
        "Loads FILE with the environment overrides, checks every key and type, prints the result\n"
        "(secrets redacted). Exit 2 on any error.",
        "kxfeed config check",
        "kxfeed config check config/prod.toml",
    )
    check.add_argument("file", nargs="?", help="config file (default: $KXFEED_CONFIG or config/default.toml)")
    check.set_defaults(func=run)


def _redact_url(url: str) -> str:
    # user:password@host -> user:***@host
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    data = to_toml_dict(cfg)
    data["db"]["url"] = _redact_url(data["db"]["url"])
    data["kalshi"]["key_id"] = "(set in KALSHI_KEY_ID)" if os.environ.get("KALSHI_KEY_ID") else "(not set)"
    key_path = os.environ.get("KALSHI_PRIVATE_KEY_PATH") or data["kalshi"]["private_key_path"]
    data["kalshi"]["private_key_path"] = key_path or "(not set)"
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for key, value in scalars.items():
        print(f"{key} = {json.dumps(value)}")
    for section, body in data.items():
        if isinstance(body, dict):
            print(f"\n[{section}]")
            for key, value in body.items():
                print(f"{key} = {json.dumps(value)}")
    print(f"\n# ok: {args.file or 'defaults'}")
    return 0
