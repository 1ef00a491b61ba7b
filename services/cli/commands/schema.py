"""Print the bus schema as JSON Schema (generated from the message Structs).

  kxfeed schema [--kind KIND]

A payload is an array of messages; each message is a positional array whose
first element is its kind tag, with the header (pub, epoch, seq, ts_exch,
ts_recv) last. See docs/bus.md.

example:
  kxfeed schema --kind delta
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import msgspec

from services.cli.common import choice, subcommand
from shared.messages import KINDS, json_schema


def register(sub: Any) -> None:
    p = subcommand(sub, "schema", __doc__)
    p.add_argument("--kind", type=choice("kind", sorted(KINDS)), help="only this message kind")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    schema = msgspec.json.schema(KINDS[args.kind]) if args.kind else json_schema()
    print(json.dumps(schema, indent=2, sort_keys=True))
    return 0
