"""The CLI behaves like a good Unix tool: quiet on a closed pipe, --version, typos answered
with the known names, every command explained with examples, waiting commands say why."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.cli.commands.db import size
from services.cli.main import EXIT_BROKEN_PIPE, build_parser, main
from shared.store.engine import make_engine
from shared.store.migrate import upgrade
from shared.store.schema import signals
from tests.integration.test_supervisor_processes import Up, child, supervised_config, up_factory
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, kxfeed_cmd

__all__ = ["up_factory"]


def _run(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kxfeed_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def _closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose only reader is closed before the command writes a byte
    (what `... | head -0` amounts to, with no race on how much head reads)."""
    proc = subprocess.Popen(kxfeed_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(60)
    return subprocess.CompletedProcess(args, code, "", err)


def _stored_db(tmp_path: Path) -> Path:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kx.toml")

    async def go() -> None:
        engine = make_engine(cfg.db)
        try:
            await upgrade(engine, cfg.db)
            now = datetime.now(UTC)
            async with engine.begin() as conn:
                await conn.execute(
                    signals.insert(),
                    [
                        {
                            "strategy": "sportsbook",
                            "ticker": f"KXNBAGAME-26NOV03LALBOS-LAL{i}",
                            "side": "yes",
                            "ts": now,
                            "recv": now,
                            "price": 4300,
                            "size": 2500,
                            "fair_ppm": 480_000,
                            "edge": 300,
                            "fees": 200,
                            "legs": "[]",
                            "detail": "{}",
                        }
                        for i in range(50)
                    ],
                )
        finally:
            await engine.dispose()

    asyncio.run(go())
    return path


def test_closed_pipe_ends_without_a_traceback(tmp_path: Path) -> None:
    path = _stored_db(tmp_path)
    for args in (("schema",), ("db", "stats", "--config", str(path)), ("signals", "--config", str(path))):
        res = _closed_pipe(*args)
        assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, (args, res.stderr)
        assert res.returncode == EXIT_BROKEN_PIPE, (args, res.returncode, res.stderr)


def test_version() -> None:
    res = _run("--version")
    assert res.returncode == 0 and re.fullmatch(r"kxfeed \d+\.\d+\.\d+\S*\n", res.stdout), res.stdout


def test_unknown_names_get_the_known_ones_and_a_suggestion(tmp_path: Path) -> None:
    path = _stored_db(tmp_path)
    cases = [
        (("worker", "conector"), "unknown worker 'conector'", "did you mean 'connector'?"),
        (("schema", "--kind", "delt"), "unknown kind 'delt'", "did you mean 'delta'"),
        (("sim", "injct"), "unknown action 'injct'", "did you mean 'inject'?"),
        (("signals", "--strategy", "complemnt", "--config", str(path)), "unknown strategy", "'complement'"),
        (
            ("signals", "--strategy", "nosuch", "--config", str(path)),
            "unknown strategy 'nosuch'",
            "sportsbook",
        ),
    ]
    for args, first, second in cases:
        res = _run(*args)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert first in res.stderr and second in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_empty_results_say_so(tmp_path: Path) -> None:
    path = _stored_db(tmp_path)
    res = _run("signals", "--ticker", "KXNFL", "--config", str(path))
    assert res.returncode == 1 and res.stdout == ""
    assert "no signals stored for ticker KXNFL*" in res.stderr
    res = _run("signals", "--strategy", "complement", "--config", str(path))
    assert res.returncode == 1 and "no signals stored for strategy complement" in res.stderr
    res = _run("signals", "--limit", "2", "--config", str(path))
    assert res.returncode == 0 and len(res.stdout.splitlines()) == 2


def _leaves(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for act in parser._actions:
        if isinstance(act, argparse._SubParsersAction):
            for name, sub in act.choices.items():
                out.append((*prefix, name))
                out.extend(_leaves(sub, (*prefix, name)))
    return out


def test_every_subcommand_has_a_description_and_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _leaves(build_parser())
    assert ("db", "stats") in commands and ("scan", "movers") in commands and ("up",) in commands
    for cmd in commands:
        # In-process: the same parser `kxfeed CMD --help` prints (a process each would take a minute).
        with pytest.raises(SystemExit) as done:
            main([*cmd, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        _usage, _, rest = text.partition("\n\n")
        description = rest.split("\n\n")[0].strip()
        assert description and not description.startswith(("positional", "options")), (cmd, text)
        examples = re.search(r"^examples?:\n((?:  kxfeed .*\n|  \S+=\S+ kxfeed .*\n)+)", text, re.M)
        assert examples, f"{' '.join(cmd)} --help shows no example:\n{text}"
        assert all(" ".join(cmd) in line for line in examples.group(1).splitlines()[:1]), (cmd, text)


def test_tap_says_what_it_waits_for(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    path = write_config(cfg, tmp_path / "kx.toml")
    res = _run("tap", "trade.", "--timeout", "4", "--config", str(path))
    assert res.returncode == 1
    assert f"waiting for messages on {cfg.bus.xpub} with topic prefix 'trade.'" in res.stderr
    assert "is `kxfeed up` running" in res.stderr and "no message for 4.0s" in res.stderr
    res = _run("signals", "--live", "--timeout", "4", "--config", str(path))
    assert res.returncode == 1 and f"waiting for signals on {cfg.bus.xpub}" in res.stderr


def test_sizes_are_binary_units() -> None:
    assert [size(n) for n in (None, 0, 1023, 1024, 2048, 1536 * 1024, 3 * 1024**3, 5 * 1024**4)] == [
        "-",
        "0 B",
        "1023 B",
        "1.0 KiB",
        "2.0 KiB",
        "1.5 MiB",
        "3.0 GiB",
        "5.0 TiB",
    ]


def test_db_stats_bytes_match_the_json(tmp_path: Path) -> None:
    path = _stored_db(tmp_path)
    text = _run("db", "stats", "--config", str(path))
    raw = _run("db", "stats", "--json", "--config", str(path))
    assert text.returncode == 0 and raw.returncode == 0, text.stderr + raw.stderr
    tables = {t["table"]: t for t in json.loads(raw.stdout)["tables"]}
    shown = 0
    for line in text.stdout.splitlines()[1:]:
        if not line.strip() or line.startswith("("):
            break
        name, _rows, human = line.split(None, 2)
        assert human.strip() == size(tables[name]["bytes"]), line
        shown += tables[name]["bytes"] is not None
    assert shown, text.stdout  # SQLite reports page sizes: at least one table has bytes


def test_supervisor_commands_answer_unknown_workers_and_closed_pipes(tmp_path: Path, up_factory: Any) -> None:
    order = tmp_path / "order.txt"
    cfg, path = supervised_config(tmp_path, lambda c: [{"name": "bus"}, child("alpha", "hb", c, order)])
    up: Up = up_factory(cfg, path)
    up.wait_running("bus", "alpha")
    for verb in ("restart", "stop"):
        res = _run(verb, "alpah", "--config", str(path))
        assert res.returncode == 2, res.stderr
        assert "unknown worker 'alpah' (did you mean 'alpha'?); known: bus, alpha" in res.stderr
    res = _closed_pipe("status", "--config", str(path))
    assert res.returncode == EXIT_BROKEN_PIPE and "Traceback" not in res.stderr, res.stderr
    assert up.workers()["alpha"]["state"] == "running"


@pytest.mark.parametrize("rate", ['"blast"', '"BLAST"'])
def test_blast_rate_in_toml(tmp_path: Path, rate: str) -> None:
    from shared.config import load_config

    f = tmp_path / "kx.toml"
    f.write_text(f"[sim]\nrate = {rate}\n")
    assert load_config(f, environ={}).sim.rate == 0.0
    assert load_config(None, environ={"KXFEED_SIM_RATE": "blast"}).sim.rate == 0.0


def test_bad_env_value_is_blamed_on_the_variable() -> None:
    res = _run("config", "check", env={"PATH": "/usr/bin:/bin", "KXFEED_SIM_RATE": "fast"})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "KXFEED_SIM_RATE='fast'" in res.stderr and "sim.rate" in res.stderr
    assert "default.toml" not in res.stderr
