"""The Actor's supervised tasks: a loop that raises fails the worker, loudly; nothing ends silently.

Each test runs a real Actor lifecycle in this process (real ZeroMQ context and publisher,
pointed at an ipc endpoint nobody serves), with no control socket and no metrics port.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from shared.actor import Actor
from shared.config import EX_CONFIG, EXIT_NOTE_ENV, Config, ConfigError
from shared.tasks import Supervised
from tests.support.config import make_config


def quiet_config(tmp: Path) -> Config:
    bus = {"xsub": f"ipc://{tmp}/xsub", "xpub": f"ipc://{tmp}/xpub"}
    return make_config(tmp, bus=bus, orderbook={"metrics_port": 0, "control": "", "drain_deadline_s": 5.0})


class Probe(Actor):
    """An actor whose hooks do what each test says."""

    name = "orderbook"

    def __init__(self, config: Config, **behaviour: Any) -> None:
        super().__init__(config)
        self.behaviour = behaviour
        self.torn_down = False
        self.loop_cancelled = asyncio.Event()

    async def setup(self) -> None:
        if "setup_error" in self.behaviour:
            raise self.behaviour["setup_error"]
        if self.behaviour.get("fail_during_setup"):
            self.spawn(self._boom(0.0), name="early")
            await asyncio.Event().wait()  # would wait forever without the failure

    async def main(self) -> None:
        self.spawn(self._steady(), name="steady")
        if "loop_error" in self.behaviour:
            self.spawn(self._boom(0.05, self.behaviour["loop_error"]), name="boom")
        if self.behaviour.get("returns"):
            self.spawn(self._returns(), name="returns")
        if self.behaviour.get("bad_unwind"):
            self.spawn(self._bad_unwind(), name="unwind")
        if self.behaviour.get("stop_soon"):
            asyncio.get_running_loop().call_later(0.3, self.request_stop)
        await self.stopping.wait()

    async def teardown(self) -> None:
        self.torn_down = True
        if self.behaviour.get("teardown_error"):
            raise RuntimeError("teardown broke")

    async def _steady(self) -> None:
        try:
            while True:
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.loop_cancelled.set()
            raise

    async def _boom(self, after: float, exc: BaseException | None = None) -> None:
        await asyncio.sleep(after)
        raise exc or RuntimeError("boom from a background loop")

    async def _returns(self) -> None:
        await asyncio.sleep(0)

    async def _bad_unwind(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise ValueError("broke while unwinding")


def run(actor: Actor) -> int:
    return asyncio.run(asyncio.wait_for(actor.serve(), 60))


def records(caplog: pytest.LogCaptureFixture, name: str = "kxfeed.orderbook") -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == name]


def test_a_background_loop_that_raises_fails_the_worker_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kxfeed")
    actor = Probe(quiet_config(tmp_path), loop_error=RuntimeError("boom from a background loop"))
    assert run(actor) == 1
    failed = [r for r in records(caplog) if r.levelno == logging.ERROR]
    assert len(failed) == 1, [r.getMessage() for r in failed]
    assert "orderbook:boom" in failed[0].getMessage()
    assert failed[0].exc_info is not None and "boom from a background loop" in str(failed[0].exc_info[1])
    assert actor.loop_cancelled.is_set(), "the other loops are cancelled"
    assert actor.torn_down and len(actor.tasks) == 0
    stopped = [r for r in records(caplog) if r.getMessage() == "stopped"]
    assert stopped[-1].ctx == {"exit_code": 1}  # type: ignore[attr-defined]


def test_a_loop_failing_during_setup_ends_a_setup_that_would_wait_forever(tmp_path: Path) -> None:
    actor = Probe(quiet_config(tmp_path), fail_during_setup=True)
    assert run(actor) == 1
    assert actor.torn_down


def test_a_config_error_exits_ex_config_with_one_line_and_an_exit_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = tmp_path / "orderbook.exit"
    monkeypatch.setenv(EXIT_NOTE_ENV, str(note))
    actor = Probe(quiet_config(tmp_path), setup_error=ConfigError("[orderbook] thing: bad\n  (fix it)"))
    assert run(actor) == EX_CONFIG
    errors = [r for r in records(caplog) if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == ["config error: [orderbook] thing: bad (fix it)"]
    assert errors[0].exc_info is None, "a config error is not a crash: no traceback"
    assert note.read_text() == "orderbook: [orderbook] thing: bad (fix it)\n"


def test_a_config_error_in_a_loop_is_a_config_error_too(tmp_path: Path) -> None:
    actor = Probe(quiet_config(tmp_path), loop_error=ConfigError("no teams"))
    assert run(actor) == EX_CONFIG


def test_a_loop_that_returns_is_done_not_a_failure(tmp_path: Path) -> None:
    actor = Probe(quiet_config(tmp_path), returns=True, stop_soon=True)
    assert run(actor) == 0
    assert actor.tasks.failure is None


def test_an_error_while_unwinding_at_stop_is_logged_not_suppressed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    actor = Probe(quiet_config(tmp_path), bad_unwind=True, stop_soon=True)
    assert run(actor) == 1
    (failed,) = [r for r in records(caplog) if r.levelno == logging.ERROR]
    assert "orderbook:unwind" in failed.getMessage()
    assert failed.exc_info is not None and "broke while unwinding" in str(failed.exc_info[1])


def test_a_teardown_error_is_logged_and_fails_the_exit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    actor = Probe(quiet_config(tmp_path), teardown_error=True, stop_soon=True)
    assert run(actor) == 1
    (failed,) = [r for r in records(caplog) if r.levelno == logging.ERROR]
    assert failed.getMessage() == "teardown failed" and failed.exc_info is not None


def test_supervised_keeps_the_first_failure_and_reports_every_one() -> None:
    seen: list[str] = []

    async def go() -> Supervised:
        group = Supervised("t", lambda what, exc: seen.append(f"{what}: {exc}"))

        async def boom(n: int) -> None:
            raise RuntimeError(f"boom {n}")

        group.spawn(boom(1), name="one")
        await asyncio.wait_for(group.failed.wait(), 10)
        group.spawn(boom(2), name="two")
        group.spawn(asyncio.Event().wait(), name="idle")
        await asyncio.sleep(0)
        await group.close()
        return group

    group = asyncio.run(go())
    assert str(group.failure) == "boom 1"
    assert seen == ["background task t:one failed: boom 1", "background task t:two failed: boom 2"]
    assert len(group) == 0


def test_teardown_after_a_failed_setup_is_best_effort_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    actor = Probe(quiet_config(tmp_path), setup_error=ConfigError("bad"), teardown_error=True)
    assert run(actor) == EX_CONFIG, "the setup's failure decides the exit"
    logged = [r for r in records(caplog) if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in logged] == [
        "config error: bad",
        "teardown after a failed setup did not finish",
    ]
    assert all(r.exc_info is None for r in logged)
