"""The command catalogue: every control command is a documented Struct that some worker answers,
that the CLI offers, and whose arguments are validated with errors that name the field."""

from __future__ import annotations

import argparse
import inspect
import typing

import msgspec
import pytest

from services import registry
from services.cli.commands.ctl import TARGETS
from services.cli.main import build_parser
from shared.actor import Actor
from shared.commands import EVERY_WORKER, all_commands, served_by
from shared.commands.base import BadArgument, Command, Reply, decode
from shared.commands.cli import field_docs
from tests.support.control import sample


def table_of(target: str) -> set[str]:
    """The commands the worker class registers (its handlers: no instance, no config needed)."""
    cls = registry.supervisor_class() if target == "supervisor" else registry.worker_class(target)
    worker: Actor = object.__new__(cls)  # commands() only names bound methods
    return set(worker.command_table().commands())


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


@pytest.mark.parametrize("cls", all_commands(), ids=lambda c: c.__name__)
def test_every_command_is_documented_and_served(cls: type[Command]) -> None:
    assert inspect.cleandoc(cls.__doc__ or "") and cls.__doc__ != Command.__doc__, (
        f"{cls.__name__}: no docstring"
    )
    assert cls.served_by, f"{cls.__name__}: no worker serves it"
    for worker in cls.served_by:
        assert worker == EVERY_WORKER or worker in TARGETS, f"{cls.__name__}: unknown worker {worker!r}"
    docs = field_docs(cls)
    for f in msgspec.structs.fields(cls):
        assert docs.get(f.name), f"{cls.__name__}.{f.name}: no docstring (it is the CLI's help)"


@pytest.mark.parametrize("target", TARGETS)
def test_each_worker_registers_a_handler_for_exactly_its_commands(target: str) -> None:
    assert table_of(target) == set(served_by(target)), target


def test_every_command_has_a_cli_subcommand_with_an_option_per_field() -> None:
    ctl = subparsers(build_parser("ctl"))["ctl"]
    workers = subparsers(ctl)
    assert set(workers) == set(TARGETS)
    seen: set[type[Command]] = set()
    for target, wp in workers.items():
        cmds = subparsers(wp)
        assert set(cmds) == set(served_by(target)), target
        for name, p in cmds.items():
            cls = served_by(target)[name]
            seen.add(cls)
            dests = {a.dest for a in p._actions}
            assert {f.name for f in msgspec.structs.fields(cls)} <= dests, (target, name)
            assert p.get_default("command_class") is cls
    assert seen == set(all_commands()), "a command no `kxfeed ctl` subcommand sends"


@pytest.mark.parametrize("cls", all_commands(), ids=lambda c: c.__name__)
def test_every_reply_type_is_a_struct_or_plain_json(cls: type[Command]) -> None:
    reply = cls.reply
    assert reply is typing.Any or reply is str or (isinstance(reply, type) and issubclass(reply, Reply))


def test_names_are_unique_per_worker() -> None:
    for target in TARGETS:
        names = [
            c.command_name() for c in all_commands() if target in c.served_by or EVERY_WORKER in c.served_by
        ]
        assert len(names) == len(set(names)), target


@pytest.mark.parametrize("cls", all_commands(), ids=lambda c: c.__name__)
def test_arguments_decode_to_the_class_and_back(cls: type[Command]) -> None:
    args = sample(cls)
    cmd = decode(cls, args)
    assert type(cmd) is cls and cmd.wire_args() == args


@pytest.mark.parametrize(
    ("cls_name", "args", "field", "words"),
    [
        ("Book", {}, "ticker", "missing required field"),
        ("Book", {"ticker": "KX-A", "depth": "deep"}, "depth", "Expected `int`, got `str`"),
        ("Book", {"ticker": "KX-A", "depth": -1}, "depth", ">= 0"),
        ("Book", {"ticker": "KX-A", "top": 5}, "top", "unknown field"),
        ("Movers", {"by": "price"}, "by", "Invalid enum value 'price'"),
        ("Snapshot", {"tickers": 7}, "tickers", "Expected `array`"),
        ("Snapshot", {"tickers": ["KX-A", 5]}, "tickers", "Expected `str`"),
        ("Flush", {"timeout_s": 0}, "timeout_s", "> 0"),
        ("Restart", {"cmd": "stop"}, "cmd", "unknown argument 'cmd'"),
    ],
)
def test_a_bad_argument_is_refused_naming_the_field(
    cls_name: str, args: dict[str, object], field: str, words: str
) -> None:
    cls = next(c for c in all_commands() if c.__name__ == cls_name)
    with pytest.raises(BadArgument) as err:
        decode(cls, args)
    assert err.value.field == field
    assert str(err.value).startswith(f"{cls.command_name()}: ") and words in str(err.value), str(err.value)
