"""Print the bus schema as JSON Schema (generated from the message Structs).

  kxfeed schema [--kind KIND] [--markdown]

A payload is an array of messages; each message is a POSITIONAL array (a msgspec
array_like Struct, not a map) whose first element is its kind tag, with the header
(pub, epoch, seq, ts_exch, ts_recv) last. Every array item carries its field name
("title"), and every message its field names in wire order ("x-kxfeed-fields").
--markdown prints the field-order tables of docs/bus.md instead.

examples:
  kxfeed schema --kind delta
  kxfeed schema | jq '."$defs".Trade."x-kxfeed-fields"'
  kxfeed schema --markdown
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.busschema import markdown, schema
from services.cli.common import choice, subcommand
from shared.messages import KINDS


def register(sub: Any) -> None:
    p = subcommand(sub, "schema", __doc__)
    p.add_argument("--kind", type=choice("kind", sorted(KINDS)), help="only this message kind")
    p.add_argument("--markdown", action="store_true", help="the field-order tables of docs/bus.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown())
        return 0
    print(json.dumps(schema(args.kind), indent=2, sort_keys=True))
    return 0
