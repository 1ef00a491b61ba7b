"""Every control command over a real control socket: the typed request a caller sends arrives at
its worker's handler as the same Struct; a refused argument comes back as an error reply that
names the field, never a traceback, and is counted as ``bad_args``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import zmq
from prometheus_client import REGISTRY

from services.cli.commands.ctl import TARGETS
from shared.commands import served_by
from shared.commands.base import Command, decode
from shared.commands.book import Book
from shared.commands.ping import Ping, PingReply
from shared.commands.table import CommandTable
from shared.control import ControlError, call, request
from tests.support.control import Served, sample


def echo_table(target: str) -> CommandTable:
    """``target``'s commands, each answered with what its handler received."""
    table = CommandTable()

    async def echo(cmd: Command) -> dict[str, Any]:
        return {"class": type(cmd).__name__, "args": msgspec.to_builtins(cmd)}

    for cls in served_by(target).values():
        table.register(cls, echo)
    return table


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, Served]]:
    served = Served(echo_table(request.param), owner=request.param)
    yield request.param, served
    served.stop()


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("kxfeed_control_rejected_total", {"reason": reason}) or 0.0


def test_every_command_round_trips_as_its_struct(target: tuple[str, Served]) -> None:
    name, served = target
    for cmd_name, cls in served_by(name).items():
        for args in ({}, sample(cls)):
            if any(f.required for f in msgspec.structs.fields(cls)) and not args:
                continue  # a command with required arguments is sent with them
            sent = decode(cls, args)
            got = request(served.endpoint, sent, timeout_s=10)
            assert got["class"] == cls.__name__, (name, cmd_name)
            assert decode(cls, {k: v for k, v in got["args"].items() if k != "cmd"}) == sent
            assert got["args"]["cmd"] == cmd_name


def raw(endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 10_000)
    sock.connect(endpoint)
    try:
        sock.send(msgspec.json.encode(body))
        reply: dict[str, Any] = msgspec.json.decode(sock.recv())
    finally:
        sock.close(0)
    return reply


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        ({}, "ticker", "Object missing required field `ticker`"),
        ({"ticker": "KX-A", "depth": "deep"}, "depth", "Expected `int`, got `str`"),
        ({"ticker": "KX-A", "depth": -3}, "depth", "Expected `int` >= 0"),
        ({"ticker": "KX-A", "top": [1]}, "top", "Object contains unknown field `top`"),
    ],
)
def test_a_bad_argument_gets_an_error_reply_naming_the_field(
    args: dict[str, Any], field: str, words: str
) -> None:
    served = Served(echo_table("orderbook"), owner="orderbook")
    try:
        before = rejected("bad_args")
        reply = raw(served.endpoint, {"cmd": "book", "args": args})
        assert reply["ok"] is False and reply["field"] == field, reply
        assert reply["error"].startswith(f"book: bad argument '{field}': ") and words in reply["error"]
        assert "Traceback" not in reply["error"]
        assert rejected("bad_args") == before + 1
        # A typed caller is refused before it sends anything, with the same words.
        if field == "depth" and isinstance(args["depth"], int):
            with pytest.raises(ControlError, match=words) as err:
                request(served.endpoint, Book(ticker="KX-A", depth=args["depth"]), timeout_s=10)
            assert err.value.field == "depth"
            assert rejected("bad_args") == before + 1, "refused by the caller: never sent"
        assert request(served.endpoint, Book(ticker="KX-A"), timeout_s=10)["class"] == "Book"
    finally:
        served.stop()


def test_a_typed_reply_is_converted_and_a_wrong_shape_refused() -> None:
    table = CommandTable()
    answers: list[Any] = [PingReply(worker="orderbook", pid=42), {"worker": "orderbook"}]

    async def ping(_: Ping) -> Any:
        return answers.pop(0)

    table.register(Ping, ping)
    served = Served(table, owner="orderbook")
    try:
        assert call(served.endpoint, Ping(), timeout_s=10) == PingReply(worker="orderbook", pid=42)
        with pytest.raises(ControlError, match="unexpected answer: Object missing required field `pid`"):
            call(served.endpoint, Ping(), timeout_s=10)
    finally:
        served.stop()
