"""Validate a config file, print the effective config (secrets redacted), run the preflight.

  kxfeed config check [FILE] [--offline]

Applies KXFEED_<SECTION>_<KEY> environment overrides, checks every key and
type, and prints the result as TOML-like sections, then every environment
variable kxfeed reads (secrets shown only as set / not set). Then it runs the
same checks as `kxfeed check` (credentials, key file, database, ports, odds key,
packaged data; --offline skips the database connect). Exit 2 on any error, each
one line on stderr with the file, key or variable named.

examples:
  kxfeed config check
  KXFEED_DB_URL=postgresql+asyncpg://kx@db/kx kxfeed config check config/prod.toml
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import tomli_w

from services.cli.common import action, planned_workers, preflight_failed, subcommand
from shared.config import load_config, to_toml_dict
from shared.environment import ENV_VARS, overrides, redact_url, shown
from shared.jetstream import redact_server


def register(sub: Any) -> None:
    p = subcommand(sub, "config", __doc__)
    verbs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = action(
        verbs,
        "check",
        "validate and print the effective config, then run the preflight",
        "Loads FILE with the environment overrides, checks every key and type, prints the result\n"
        "and the environment (secrets redacted), then runs `kxfeed check`. Exit 2 on any error.",
        "kxfeed config check",
        "kxfeed config check config/prod.toml --offline",
    )
    check.add_argument("file", nargs="?", help="config file (default: $KXFEED_CONFIG or config/default.toml)")
    check.add_argument("--offline", action="store_true", help="skip the network checks (database connect)")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    data = to_toml_dict(cfg)
    data["db"]["url"] = redact_url(data["db"]["url"])
    data["jetstream"]["servers"] = [redact_server(u) for u in data["jetstream"]["servers"]]
    data["kalshi"]["key_id"] = "(set in KALSHI_KEY_ID)" if os.environ.get("KALSHI_KEY_ID") else "(not set)"
    key_path = os.environ.get("KALSHI_PRIVATE_KEY_PATH") or data["kalshi"]["private_key_path"]
    data["kalshi"]["private_key_path"] = key_path or "(not set)"
    print(tomli_w.dumps(data), end="")
    print("\n# environment (what kxfeed reads; secrets redacted)")
    for var in ENV_VARS:
        if "<" not in var.name:
            print(f"# {var.name} = {shown(var)}")
    for name, value in overrides().items():
        print(f"# {name} = {value}  (override)")
    workers = planned_workers(cfg)
    if preflight_failed("kxfeed config check", cfg, workers, supervisor=True, offline=args.offline):
        return 2
    print(f"\n# ok: {args.file or 'defaults'} ({', '.join(workers)})")
    return 0
