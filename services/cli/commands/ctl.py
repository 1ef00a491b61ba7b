"""Send any control command to a running worker (or the supervisor); print the answer as JSON.

  kxfeed ctl WORKER COMMAND [--ARGUMENT VALUE ...] [--timeout S]

Every command of every worker is here, derived from its class in shared/commands/ (one module
per command): its options are the command's fields, its help the command's docstring, and a
value is checked exactly as the worker checks it. `kxfeed ctl WORKER --help` lists what
WORKER answers; `kxfeed ctl WORKER COMMAND --help` documents one command. Exit 0 with the
answer, 1 when the worker refuses or does not answer, 2 for an argument the command refuses.

examples:
  kxfeed ctl orderbook book --ticker KXNBAGAME-26NOV03LALBOS-LAL --depth 5
  kxfeed ctl sim inject --kind gap --count 2
  kxfeed ctl supervisor restart --name connector
  kxfeed ctl writer flush --timeout-s 30
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from typing import Any

import msgspec

from services.cli.common import add_config_options, load, subcommand
from services.registry import WORKER_MODULES
from shared.commands import served_by
from shared.commands.base import BadArgument, Command
from shared.commands.cli import add_arguments, from_namespace, summary
from shared.config import Config
from shared.control import ControlError, request

#: Who answers control commands: the supervisor, then every worker it can start.
TARGETS = ("supervisor", *WORKER_MODULES)


def register(sub: Any) -> None:
    p = subcommand(sub, "ctl", __doc__)
    workers = p.add_subparsers(dest="target", metavar="WORKER", required=True)
    for target in TARGETS:
        commands = sorted(served_by(target).items())
        listing = (
            f"The control commands {target} answers; `kxfeed ctl {target} COMMAND --help` documents one."
        )
        examples = "\n".join(f"  {example(target, cls)}" for _, cls in commands[:3])
        w = workers.add_parser(
            target,
            help=f"commands {target} answers",
            description=f"{listing}\n\nexamples:\n{examples}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmds = w.add_subparsers(dest="ctl_command", metavar="COMMAND", required=True)
        for name, cls in commands:
            doc = inspect.cleandoc(cls.__doc__ or "")
            c = cmds.add_parser(
                name,
                help=summary(cls),
                description=f"{doc}\n\nexample:\n  {example(target, cls)}",
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            add_arguments(c, cls)
            c.add_argument(
                "--timeout", type=float, default=10.0, metavar="S", help="seconds to wait (default 10)"
            )
            add_config_options(c)
            c.set_defaults(func=run, command_class=cls)


def example(target: str, cls: type[Command]) -> str:
    """``kxfeed ctl TARGET NAME`` with the command's required options."""
    required = [
        f"--{f.name.replace('_', '-')} {f.name.upper()}" for f in msgspec.structs.fields(cls) if f.required
    ]
    return " ".join(["kxfeed ctl", target, cls.command_name(), *required])


def endpoint(cfg: Config, target: str) -> str:
    return cfg.supervisor.control if target == "supervisor" else cfg.worker(target).control


def run(args: argparse.Namespace) -> int:
    prog = f"kxfeed ctl {args.target} {args.ctl_command}"
    try:
        command = from_namespace(args.command_class, args)
    except BadArgument as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    cfg = load(args)
    try:
        result = request(endpoint(cfg, args.target), command, timeout_s=args.timeout)
    except ControlError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0
