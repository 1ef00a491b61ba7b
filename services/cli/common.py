"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import difflib
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from shared.commands.base import Command
from shared.config import Config, load_config
from shared.control import ControlError, request
from shared.curve import Curve, install
from shared.log import setup_logging
from shared.messages import JSON_ENCODER
from shared.units import format_count, format_price


def add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML config file (default: $KXFEED_CONFIG, else config/default.toml: simulator + SQLite)",
    )
    p.add_argument("--log-json", action="store_true", help="log JSON lines instead of human-readable lines")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="override [log] level")


def load(args: argparse.Namespace) -> Config:
    """Load config and set up logging as the options say; the bus and control sockets the
    command opens beyond loopback use the config's CURVE keys (read when first needed)."""
    cfg = load_config(args.config)
    setup_logging(args.log_level or cfg.log.level, json=args.log_json or cfg.log.json)
    install(Curve(cfg.curve))
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


def action(sub: Any, name: str, summary: str, usage_text: str, *examples: str, **kw: Any) -> Any:
    """A nested action (``db stats``, ``scan movers``...) with a description and examples, so its
    ``--help`` says what it does and how it is called, like the top-level commands."""
    text = f"{summary}\n\n{usage_text.strip()}\n\nexample{'s' if len(examples) > 1 else ''}:\n"
    text += "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(
        name, help=summary, description=text, formatter_class=argparse.RawDescriptionHelpFormatter, **kw
    )


def show_answer(
    args: argparse.Namespace, prog: str, endpoint: str, command: Command, show: Callable[[Any], None]
) -> int:
    """Ask a worker (``args.timeout``) and print its answer: as JSON with ``args.json``, else
    through ``show``. Exit 1, the error on stderr after ``prog: ``, when it does not answer."""
    try:
        answer = request(endpoint, command, timeout_s=args.timeout)
    except ControlError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(JSON_ENCODER.encode(answer).decode())
    else:
        show(answer)
    return 0


def unknown(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown worker 'conector' (did you mean 'connector'?); known: bus, sim, ...`` - one line that
    answers a typo with the names that exist."""
    names = list(known)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    listed = ", ".join(names) if names else "(none)"
    return f"unknown {what} {name!r}{hint}; known: {listed}"


def choice(what: str, known: Iterable[str]) -> Callable[[str], str]:
    """An argparse ``type=`` that accepts one of ``known`` and answers anything else with
    :func:`unknown` (argparse's own ``choices`` lists them but never suggests one)."""
    names = tuple(known)

    def check(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(unknown(what, text, names))
        return text

    check.__name__ = what  # argparse names the type in its messages
    return check


class Printing:
    """When a command printing what arrives stops: ``--count`` lines printed, or ``--timeout``
    seconds without a message (exit 1 when nothing came at all); while it waits, the
    :class:`WaitNotice` says for what."""

    def __init__(self, prog: str, what: str, count: int, timeout: float, noun: str = "message") -> None:
        self.prog = prog
        self.count = count
        self.timeout = timeout
        self.noun = noun
        self.seen = 0
        self.notice = WaitNotice(prog, what)
        self._last = time.monotonic()

    @property
    def done(self) -> bool:
        return bool(self.count) and self.seen >= self.count

    def idle(self) -> int | None:
        """Nothing arrived in a poll: the exit status once ``timeout`` has passed, else None."""
        self.notice.tick()
        if self.timeout and time.monotonic() - self._last > self.timeout:
            print(f"{self.prog}: no {self.noun} for {self.timeout}s", file=sys.stderr)
            return 1 if self.seen == 0 else 0
        return None

    def heard(self) -> None:
        self._last = time.monotonic()
        self.notice.heard()

    def printed(self) -> bool:
        """One more line out; True once that was the last one ``count`` asks for."""
        self.seen += 1
        return self.done


class WaitNotice:
    """Says on stderr what a waiting command waits for: once after ``first_s`` of silence, then
    every ``every_s`` while nothing arrives, so a command never hangs without a word."""

    def __init__(self, prog: str, what: str, first_s: float = 2.0, every_s: float = 10.0) -> None:
        self.prog = prog
        self.what = what
        self.first_s = first_s
        self.every_s = every_s
        self._quiet_since = time.monotonic()
        self._next = self._quiet_since + first_s

    def heard(self) -> None:
        now = time.monotonic()
        self._quiet_since = now
        self._next = now + self.every_s

    def tick(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        quiet = now - self._quiet_since
        print(
            f"{self.prog}: waiting for {self.what}: nothing for {quiet:.0f}s "
            "(is `kxfeed up` running with this config? Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )


def planned_workers(cfg: Config) -> list[str]:
    """The workers ``kxfeed up`` would run with this config, in start order."""
    from services import registry
    from shared.kalshi.endpoints import effective_env

    sup = cfg.supervisor
    if sup.children:
        return [c.name for c in sup.children]
    if sup.workers:
        return list(sup.workers)
    return registry.default_workers(effective_env(cfg), opted_in=registry.opted_in(cfg))


def preflight_failed(
    prog: str, cfg: Config, workers: list[str], *, supervisor: bool = False, offline: bool = False
) -> list[str]:
    """Run the preflight; print each problem as one line on stderr and return them (the caller
    exits non-zero: a setup mistake is answered at once, never with a crash loop)."""
    from shared.preflight import notes, preflight

    for note in notes(cfg):
        print(f"{prog}: note: {note}", file=sys.stderr)
    problems = preflight(cfg, workers, supervisor=supervisor, offline=offline)
    for problem in problems:
        print(f"{prog}: {problem}", file=sys.stderr)
    return list(problems)


def dollars(price: int | None) -> str:
    """A price in $0.0001 units as dollars ("$0.4300"), exactly; "-" for none."""
    if price is None:
        return "-"
    text = format_price(price)
    return f"-${text[1:]}" if text.startswith("-") else f"${text}"


def contracts(count: int) -> str:
    """A contract count in hundredths ("25.00")."""
    return format_count(count)


def when(ts: datetime) -> str:
    """A UTC timestamp to the millisecond, ISO 8601 with a Z."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
