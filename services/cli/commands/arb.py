"""Ask the arb worker about the games it watches.

  kxfeed arb unmatched [--json]

unmatched: Kalshi games the arb worker could not tie to a sportsbook event, and why -
no team table for the series, a ticker it cannot read, a team code without a name, no
odds yet for the sport, no event that day, a best match below [arb] min_confidence
(its score shown), or two events that score alike. These games get no sportsbook
signal (their complement arbitrage is still watched); nothing is guessed.

examples:
  kxfeed arb unmatched
  kxfeed arb unmatched --json
"""

from __future__ import annotations

import argparse
from typing import Any

from services.cli.common import action, add_config_options, load, show_answer, subcommand
from shared.commands.unmatched import Unmatched


def register(sub: Any) -> None:
    p = subcommand(sub, "arb", __doc__)
    verbs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    um = action(
        verbs,
        "unmatched",
        "games not matched to a sportsbook event, with the reason",
        "Asks the arb worker ([arb] control); exit 1 when it does not answer.",
        "kxfeed arb unmatched",
        "kxfeed arb unmatched --json",
    )
    um.add_argument("--json", action="store_true", help="print the worker's answer as JSON")
    um.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the worker (default 3)")
    add_config_options(um)
    um.set_defaults(func=run_unmatched)


def run_unmatched(args: argparse.Namespace) -> int:
    return show_answer(args, "kxfeed arb", load(args).arb.control, Unmatched(), _show_unmatched)


def _show_unmatched(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("every watched game is matched to a sportsbook event")
        return
    print(f"{len(rows)} games not matched:")
    for r in rows:
        score = f" (best score {r['confidence']:.2f})" if r.get("confidence") else ""
        print(f"  {r['event_ticker']:<36} {r['reason']:<15}{score}  {r.get('detail', '')}")
