"""Range queries (shared/store/history.py) over data stored by the writer's own path, on SQLite
and PostgreSQL: paging is exact and complete, filters select what they say, cursors are checked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.cli.main import main as cli_main
from shared.config import DbConfig
from shared.messages import Message
from shared.store import history
from shared.store.engine import make_engine
from shared.store.types import datetime_to_us, us_to_datetime
from tests.support.config import make_config, write_config
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.stored import expected_rows, store_messages
from tests.support.synth import BASE_NS, mixed, stamp, tickers

KINDS = list(history.KINDS)


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path, prefix="kxh")


@pytest.fixture
def stored(db: DbConfig) -> tuple[DbConfig, list[Message]]:
    msgs = stamp(mixed(2500, seed=19, duplicates=0.1))
    asyncio.run(store_messages(db, msgs))
    return db, msgs


def run(db: DbConfig, body: Any) -> Any:
    async def go() -> Any:
        engine = make_engine(db)
        try:
            return await body(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def all_pages(engine: Any, q: history.Query, limit: int) -> tuple[list[tuple[Any, ...]], int]:
    rows: list[tuple[Any, ...]] = []
    cursor = None
    pages = 0
    while True:
        p = await history.page(engine, q, after=cursor, limit=limit)
        rows += p.rows
        pages += 1
        if p.cursor is None:
            return rows, pages
        assert len(p.rows) == limit
        cursor = p.cursor


async def streamed(engine: Any, q: history.Query, size: int) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    async for b in history.batches(engine, q, size=size):
        assert 0 < len(b) <= size
        out += [tuple(r) for r in b]
    return out


def test_pages_and_batches_return_exactly_the_stored_rows_in_key_order(
    stored: tuple[DbConfig, list[Message]],
) -> None:
    db, msgs = stored

    async def body(engine: Any) -> None:
        for kind in KINDS:
            want = expected_rows(msgs, kind)
            assert want, kind
            q = history.Query(kind)  # type: ignore[arg-type]
            paged, pages = await all_pages(engine, q, 97)
            assert paged == want, kind
            assert pages == len(want) // 97 + 1
            assert await streamed(engine, q, 113) == want, kind

    run(db, body)


def test_ticker_series_and_window_select_what_they_say(stored: tuple[DbConfig, list[Message]]) -> None:
    db, msgs = stored
    one = tickers(6)[2]
    everything = {k: expected_rows(msgs, k) for k in KINDS}
    ts_us = {k: history.KINDS[k].names.index("ts") for k in KINDS}
    all_ts = sorted(r[ts_us["deltas"]] for r in everything["deltas"])
    since_us, until_us = all_ts[len(all_ts) // 4], all_ts[3 * len(all_ts) // 4]
    since, until = us_to_datetime(since_us), us_to_datetime(until_us)

    async def body(engine: Any) -> None:
        for kind in KINDS:
            rows = everything[kind]
            t = ts_us[kind]
            tk = history.KINDS[kind].names.index("ticker")
            got, _ = await all_pages(engine, history.Query(kind, ticker=one), 50)  # type: ignore[arg-type]
            assert got == [r for r in rows if r[tk] == one] and got, kind
            got, _ = await all_pages(engine, history.Query(kind, series="KXSYN"), 500)  # type: ignore[arg-type]
            assert got == rows, kind
            got, _ = await all_pages(engine, history.Query(kind, series="NOPE"), 500)  # type: ignore[arg-type]
            assert got == [], kind
            q = history.Query(kind, ticker=one, since=since, until=until)  # type: ignore[arg-type]
            got, _ = await all_pages(engine, q, 7)
            assert got == [r for r in rows if r[tk] == one and since_us <= r[t] < until_us], kind
            assert await streamed(engine, q, 5) == got

    run(db, body)


def test_gap_rows_of_a_window_and_a_market(stored: tuple[DbConfig, list[Message]]) -> None:
    db, _ = stored
    one = tickers(6)[1]
    g = history.GAPS.names

    async def body(engine: Any) -> None:
        rows = await history.gap_rows(engine)
        assert rows and all(len(r) == len(g) for r in rows)
        mine = await history.gap_rows(engine, ticker=one)
        assert mine and all(one in r[g.index("tickers")] for r in mine)
        assert set(mine) < set(rows)
        assert await history.gap_rows(engine, series="NOPE") == []
        before = us_to_datetime(BASE_NS // 1000)
        assert await history.gap_rows(engine, until=before) == []
        late = await history.gap_rows(engine, since=before + timedelta(days=365))
        assert {r[g.index("status")] for r in late} <= {"open"}  # still open then, as far as stored

    run(db, body)


def test_cursors_are_checked(stored: tuple[DbConfig, list[Message]]) -> None:
    db, _ = stored

    async def body(engine: Any) -> None:
        first = await history.page(engine, history.Query("trades"), limit=3)
        assert first.cursor is not None
        for bad in ("", "!!!", "bm90IGpzb24", first.cursor[:-3], first.cursor + "AAAA"):
            with pytest.raises(history.BadCursor):
                await history.page(engine, history.Query("trades"), after=bad)
        with pytest.raises(history.BadCursor):  # a trades cursor for deltas
            await history.page(engine, history.Query("deltas"), after=first.cursor)
        with pytest.raises(ValueError):
            await history.page(engine, history.Query("trades"), limit=0)
        nxt = await history.page(engine, history.Query("trades"), after=first.cursor, limit=3)
        assert len(nxt.rows) == 3 and not set(nxt.rows) & set(first.rows)

    run(db, body)
    with pytest.raises(ValueError):
        history.Query("books")  # type: ignore[arg-type]


# ---- kxfeed db history --------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], path: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(["db", "history", *args, "--config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_pages_json_lines_and_a_table(
    stored: tuple[DbConfig, list[Message]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, msgs = stored
    path = write_config(make_config(tmp_path, db=msgspec.to_builtins(db)), tmp_path / "kxfeed.toml")
    one = tickers(6)[3]
    spec = history.KINDS["deltas"]
    want = [r for r in expected_rows(msgs, "deltas") if r[0] == one]
    # One page of 10, then the rest through the cursor it printed.
    code, out, err = cli(capsys, path, one, "--kind", "deltas", "--limit", "10", "--json")
    assert code == 0
    first = [json.loads(line) for line in out.splitlines()]
    assert len(first) == 10 and "--cursor " in err
    cursor = err.split("--cursor ")[1].split()[0]
    code, out, err = cli(capsys, path, one, "--kind", "deltas", "--cursor", cursor, "--all", "--json")
    assert code == 0 and err == ""
    got = first + [json.loads(line) for line in out.splitlines()]
    ts_cols = [c.name for c in spec.columns if c.type == "ts"]
    for row in got:
        for c in ts_cols:
            row[c] = datetime_to_us(datetime.fromisoformat(row[c]))
    assert [tuple(r[n] for n in spec.names) for r in got] == want
    # A window by ISO times (no zone = UTC): the same rows as the API's.
    lo, hi = want[5][spec.names.index("ts")], want[-5][spec.names.index("ts")]
    since, until = us_to_datetime(lo).isoformat(), us_to_datetime(hi).replace(tzinfo=None).isoformat()
    code, out, _ = cli(capsys, path, one, "--kind", "trades", "--since", since, "--until", until, "--all")
    trades = [r for r in expected_rows(msgs, "trades") if r[1] == one and lo <= r[-2] < hi]
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["trade_id", "yes_price", "no_price"]
    assert [line.split()[0] for line in lines[1:]] == [r[0] for r in trades]
    assert f"${trades[0][2] // 10000}.{trades[0][2] % 10000:04d}" in lines[1]
    # Nothing there: exit 1. Usage mistakes: exit 2, said on stderr.
    assert cli(capsys, path, "NOPE", "--kind", "tickers")[0] == 1
    for bad in (
        ["--since", "yesterday"],
        ["--since", "1h", "--until", "2h"],
        ["--cursor", "zz"],
        ["--limit", "0"],
    ):
        code, _, err = cli(capsys, path, one, "--kind", "deltas", *bad)
        assert code == 2 and err.startswith("kxfeed db history: "), bad
