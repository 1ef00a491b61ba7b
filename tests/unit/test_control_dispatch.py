"""The control dispatcher: every request body gets a reply; the caller's mistakes are answered
plainly and are not logged as failures; failures are logged with their traceback; all counted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from shared.control_server import Args, Dispatcher, MissingArgument, UnknownCommand

LOG = logging.getLogger("kxfeed.test-control")


async def handler(cmd: str, args: Args) -> Any:
    if cmd == "echo":
        return dict(args)
    if cmd == "book":
        return {"ticker": str(args["ticker"]), "depth": int(args.get("depth", 10))}
    if cmd == "lookup":
        raise KeyError(f"{args['ticker']} is not a watched market")
    if cmd == "tickers":
        return [t for t in args.get("tickers", [])]
    if cmd == "boom":
        raise RuntimeError("the worker's own bug")
    if cmd == "unencodable":
        return {"x": object()}
    raise UnknownCommand(cmd)


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("kxfeed_control_rejected_total", {"reason": reason}) or 0.0


def dispatch(body: bytes) -> tuple[dict[str, Any], str | None, Dispatcher]:
    d = Dispatcher("tester", handler, LOG)
    raw, reason = asyncio.run(d.dispatch(body, "peer-1"))
    reply: dict[str, Any] = msgspec.json.decode(raw)
    return reply, reason, d


def test_ok_reply_carries_the_result() -> None:
    reply, reason, d = dispatch(b'{"cmd": "book", "args": {"ticker": "KX-A", "depth": 3}}')
    assert reply == {"ok": True, "result": {"ticker": "KX-A", "depth": 3}}
    assert reason is None and d.rejected == {}


def test_args_default_to_empty() -> None:
    reply, reason, _ = dispatch(b'{"cmd": "echo"}')
    assert reply == {"ok": True, "result": {}} and reason is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x01\x02garbage",
        b"\xff\xfe\xfd",
        b'{"cmd": "\xff"}',
        b"[1, 2]",
        b"null",
        b'{"cmd": 5}',
        b'{"cmd": "echo", "args": [1]}',
        b'{"cmd": "echo", "args": {"a": 1}, "extra": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        b'{"args": {}}',
        b'{"cmd": "' + b"x" * 65 + b'"}',
        b'{"cmd": ""}',
    ],
)
def test_anything_that_is_not_a_request_is_answered_bad_request(body: bytes) -> None:
    before = rejected("decode")
    reply, reason, d = dispatch(body)
    assert reply["ok"] is False and reply["error"].startswith("bad request:")
    assert reason == "decode" and d.rejected == {"decode": 1}
    assert rejected("decode") == before + 1


def test_unknown_command_names_it_and_the_owner(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reply, reason, _ = dispatch(b'{"cmd": "frobnicate"}')
    assert reply == {"ok": False, "error": "unknown command 'frobnicate' for tester"}
    assert reason == "unknown_command"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"cmd": "book"}', "book: missing argument 'ticker'"),
        (b'{"cmd": "book", "args": {"ticker": "A", "depth": "deep"}}', "invalid literal for int()"),
        (b'{"cmd": "book", "args": {"ticker": "A", "depth": [1]}}', "book: wrong argument type: int()"),
        (b'{"cmd": "lookup", "args": {"ticker": "KX-Z"}}', "lookup: KX-Z is not a watched market"),
        (b'{"cmd": "tickers", "args": {"tickers": 7}}', "tickers: wrong argument type:"),
    ],
)
def test_callers_mistakes_are_plain_errors_without_traceback(
    body: bytes, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = rejected("bad_args")
    reply, reason, _ = dispatch(body)
    assert reply["ok"] is False and error in reply["error"], reply
    assert reason == "bad_args" and rejected("bad_args") == before + 1
    logged = [r for r in caplog.records if r.name == LOG.name]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO, "logged once, not as a failure"
    assert logged[0].exc_info is None and "control request refused" in logged[0].getMessage()


def test_a_failing_command_is_answered_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = rejected("failed")
    reply, reason, _ = dispatch(b'{"cmd": "boom"}')
    assert reply == {"ok": False, "error": "RuntimeError: the worker's own bug"}
    assert reason == "failed" and rejected("failed") == before + 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None


def test_an_unencodable_result_is_an_error_reply() -> None:
    reply, reason, _ = dispatch(b'{"cmd": "unencodable"}')
    assert reply["ok"] is False and "not encodable" in reply["error"]
    assert reason == "reply_encode"


def test_repeated_garbage_is_logged_once_per_burst(caplog: pytest.LogCaptureFixture) -> None:
    d = Dispatcher("tester", handler, LOG)

    async def many() -> None:
        for _ in range(50):
            await d.dispatch(b"\x00garbage", "peer")

    asyncio.run(many())
    logged = [r for r in caplog.records if r.name == LOG.name]
    assert d.rejected == {"decode": 50}
    assert len(logged) == 1, "the first of a burst; the rest are folded into a summary on flush"
    d.flush()
    assert "burst continued" in caplog.records[-1].getMessage()


def test_args_lookup_says_which_argument_is_missing() -> None:
    with pytest.raises(MissingArgument) as err:
        Args({"a": 1})["b"]
    assert str(err.value) == "missing argument 'b'"
    assert Args({"a": 1}).get("b") is None
