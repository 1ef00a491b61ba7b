"""``kxfeed export`` end to end: data stored through the writer's own path, exported by the real
command to Parquet and CSV, read back with pyarrow and with DuckDB, compared row by row with
what the database returns (and with what the stored messages say)."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.cli.main import main as cli_main
from shared import export as ex
from shared.config import DbConfig
from shared.messages import BookDelta, MarketMeta, Message, Trade
from shared.store import history
from shared.store.engine import make_engine
from shared.store.types import us_to_datetime
from tests.support.config import make_config, write_config
from tests.support.messages import book_delta
from tests.support.pg import DB_PARAMS, fresh_db
from tests.support.stored import expected_rows, store_messages
from tests.support.synth import mixed, stamp, tickers


@pytest.fixture(params=DB_PARAMS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbConfig]:
    yield from fresh_db(request, tmp_path, prefix="kxe")


@pytest.fixture
def stored(db: DbConfig, tmp_path: Path) -> tuple[DbConfig, list[Message], Path]:
    msgs = stamp(mixed(3000, seed=23, duplicates=0.1))
    asyncio.run(store_messages(db, msgs))
    return db, msgs, write_config(make_config(tmp_path, db=msgspec.to_builtins(db)), tmp_path / "kxfeed.toml")


def export(capsys: pytest.CaptureFixture[str], cfg: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main(["export", *args, "--config", str(cfg)])
    out, err = capsys.readouterr()
    return code, out, err


def from_db(db: DbConfig, q: history.Query) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        engine = make_engine(db)
        try:
            return [tuple(r) async for b in history.batches(engine, q) for r in b]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def gaps_from_db(db: DbConfig, **window: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        engine = make_engine(db)
        try:
            return await history.gap_rows(engine, **window)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def read_arrow(path: Path, kind: history.Kind) -> list[tuple[Any, ...]]:
    table = pq.read_table(path)
    assert table.schema.names == list(kind.names)
    cols = []
    for c in kind.columns:
        col = table.column(c.name)
        cols.append((col.cast(pa.int64()) if c.type == "ts" else col).to_pylist())
    return list(zip(*cols, strict=True))


def read_duckdb(path: Path, kind: history.Kind) -> list[tuple[Any, ...]]:
    # Times as DuckDB's own exact microseconds; rows in file order.
    sel = ", ".join(f'epoch_us("{c.name}")' if c.type == "ts" else f'"{c.name}"' for c in kind.columns)
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT {sel} FROM read_parquet(?) ORDER BY file_row_number", [str(path)]
        ).fetchall()


def read_csv(path: Path, kind: history.Kind) -> list[tuple[Any, ...]]:
    def value(c: history.Col, text: str) -> Any:
        if text == "" and c.nullable:
            return None
        if c.type in ("int", "ts"):
            return int(text)
        if c.type == "bool":
            return {"true": True, "false": False}[text]
        return text

    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == kind.names
    return [tuple(value(c, v) for c, v in zip(kind.columns, r, strict=True)) for r in rows[1:]]


def test_parquet_reads_back_row_by_row_in_pyarrow_and_duckdb(
    stored: tuple[DbConfig, list[Message], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, msgs, cfg = stored
    for kind_name, kind in history.KINDS.items():
        out = tmp_path / f"{kind_name}.parquet"
        want = from_db(db, history.Query(kind_name))  # type: ignore[arg-type]
        assert want == expected_rows(msgs, kind_name) and len(want) > 30
        batch = len(want) // 3 - 1  # several row groups, as a big export has, the last one short
        code, said, err = export(capsys, cfg, "--kind", kind_name, "--format", "parquet", "--out", str(out),
                                 "--batch", str(batch))  # fmt: skip
        assert code == 0, err
        assert read_arrow(out, kind) == want, kind_name
        assert read_duckdb(out, kind) == want, kind_name
        assert f"{out}: {len(want)} {kind_name} rows" in said
        meta = pq.read_metadata(out)
        assert meta.num_row_groups == 4  # written batch by batch
        assert max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) == batch
        schema = pq.read_schema(out)
        info = json.loads(schema.metadata[b"kxfeed"])
        assert (info["kind"], info["price_scale"], info["count_scale"]) == (kind_name, 10_000, 100)
        for c in kind.columns:
            if c.unit:
                assert schema.field(c.name).metadata[b"unit"].decode() == c.unit
                assert info["columns"][c.name]["unit"] == c.unit
        gaps = out.with_name(f"{kind_name}.gaps.parquet")
        assert read_duckdb(gaps, history.GAPS) == gaps_from_db(db) != []


def test_a_market_or_series_window_to_csv_and_parquet_with_its_gaps(
    stored: tuple[DbConfig, list[Message], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, msgs, cfg = stored
    one = tickers(6)[4]
    kind = history.KINDS["trades"]
    ts = kind.names.index("ts")
    everything = expected_rows(msgs, "trades")
    times = sorted(r[ts] for r in everything)
    lo, hi = times[len(times) // 5], times[4 * len(times) // 5]
    since, until = us_to_datetime(lo), us_to_datetime(hi)
    window = ["--since", since.isoformat(), "--until", until.isoformat()]
    q = history.Query("trades", ticker=one, since=since, until=until)
    want = from_db(db, q)
    assert want == [r for r in everything if r[1] == one and lo <= r[ts] < hi] != []
    out = tmp_path / "x" / "trades.csv"
    code, _, err = export(capsys, cfg, "--kind", "trades", "--ticker", one, *window, "--format", "csv",
                          "--out", str(out))  # fmt: skip
    assert code == 0, err
    assert read_csv(out, kind) == want
    meta = json.loads(out.with_name("trades.csv.meta.json").read_text())
    assert meta["ticker"] == one and meta["columns"]["yes_price"]["unit"] == history.PRICE
    gaps = read_csv(out.with_name("trades.gaps.csv"), history.GAPS)
    assert gaps == gaps_from_db(db, ticker=one, since=since, until=until)
    assert all(one in json.loads(r[history.GAPS.names.index("tickers")]) for r in gaps)
    # The series: every market of it; one that has none: an empty file with the schema.
    out = tmp_path / "series.parquet"
    assert export(capsys, cfg, "--kind", "trades", "--series", "KXSYN", *window, "--format", "parquet",
                  "--out", str(out))[0] == 0  # fmt: skip
    assert read_duckdb(out, kind) == [r for r in everything if lo <= r[ts] < hi]
    out = tmp_path / "none.parquet"
    assert (
        export(capsys, cfg, "--kind", "trades", "--series", "NOPE", "--format", "parquet", "--out", str(out))[
            0
        ]
        == 0
    )
    assert (
        pq.read_table(out).num_rows == 0 and pq.read_table(out.with_name("none.gaps.parquet")).num_rows == 0
    )
    assert sorted(p.name for p in tmp_path.rglob("*.part")) == []
    # Usage mistakes: exit 2, nothing written.
    for bad in (["--since", "soon"], ["--since", "1h", "--until", "2h"], ["--batch", "0"]):
        code, _, err = export(
            capsys, cfg, "--kind", "deltas", *bad, "--format", "csv", "--out", str(tmp_path / "b.csv")
        )
        assert code == 2 and err.startswith("kxfeed export: "), bad
    assert not (tmp_path / "b.csv").exists()


def test_text_with_quotes_commas_and_newlines_survives_both_formats(
    db: DbConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = ['a"b', "c,d", "e\nf", "", "g'h", 'x"",\n"y']
    msgs = stamp(
        [
            Trade(trade_id=t or "-", ticker=f"T{i}{t}", yes_price=100 + i, no_price=9_900 - i, count=i,
                  taker_side="yes", ts_exch=1_800_000_000_000 + i, ts_recv=1_800_000_000_000_000_000)
            for i, t in enumerate(odd)
        ]
    )  # fmt: skip
    asyncio.run(store_messages(db, msgs))
    cfg = write_config(make_config(tmp_path, db=msgspec.to_builtins(db)), tmp_path / "kxfeed.toml")
    kind = history.KINDS["trades"]
    want = from_db(db, history.Query("trades"))
    assert sorted(r[1] for r in want) == sorted(f"T{i}{t}" for i, t in enumerate(odd))
    for fmt in ex.FORMATS:
        out = tmp_path / f"odd.{fmt}"
        assert export(capsys, cfg, "--kind", "trades", "--format", fmt, "--out", str(out))[0] == 0
        assert (read_duckdb(out, kind) if fmt == "parquet" else read_csv(out, kind)) == want, fmt


def test_deltas_from_overlapping_runs_export_in_key_order_filtered_in_both_formats(
    db: DbConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deltas are stored packed: a later batch that fills a hole of an earlier run makes runs
    that overlap, which the export merges back into (conn, sid, xseq) order. The Arrow path
    (Parquet, and CSV when pyarrow is there) equals the database's rows for every filter
    (none, a ticker, a series, a window), tickers with quotes and commas included."""
    names = ['K"A', "K,B", "KC"]
    meta = [
        MarketMeta(ticker=t, event_ticker="E", series_ticker="S1" if i < 2 else "S2", title="",
                   yes_sub_title="", no_sub_title="", status="open", ts_recv=1_800_000_000_000_000_000)
        for i, t in enumerate(names)
    ]  # fmt: skip

    def delta(x: int) -> BookDelta:
        return book_delta(names[x % 3], x, 100 + x % 50, x % 17 - 8 or 1, conn=4, sid=2 + x % 2,
                          ts_recv=1_800_000_000_000_000_000 + x * 10**9)  # fmt: skip

    holes = {x for x in range(1, 2001) if x % 7 == 0}
    first = [delta(x) for x in range(1, 2001) if x not in holes]
    late = [delta(x) for x in sorted(holes)]  # below the stored high-water mark
    asyncio.run(store_messages(db, stamp([*meta, *first], pub="a"), batch=500))
    asyncio.run(store_messages(db, stamp(late, pub="b"), batch=100))
    cfg = write_config(make_config(tmp_path, db=msgspec.to_builtins(db)), tmp_path / "kxfeed.toml")
    kind = history.KINDS["deltas"]
    t0 = us_to_datetime(1_800_000_000_000_000 + 300 * 10**6)
    t1 = us_to_datetime(1_800_000_000_000_000 + 1500 * 10**6)
    cases: list[tuple[list[str], history.Query]] = [
        ([], history.Query("deltas")),
        (["--ticker", 'K"A'], history.Query("deltas", ticker='K"A')),
        (["--series", "S1"], history.Query("deltas", series="S1")),
        (["--since", t0.isoformat(), "--until", t1.isoformat()], history.Query("deltas", since=t0, until=t1)),
    ]
    for args, q in cases:
        want = from_db(db, q)
        assert want == sorted(want, key=lambda r: (r[1], r[2], r[3])) and want, args
        if not args:
            assert len(want) == 2000
        for fmt in ex.FORMATS:
            out = tmp_path / f"d{len(args)}.{fmt}"
            code, _, err = export(capsys, cfg, "--kind", "deltas", *args, "--format", fmt, "--out", str(out),
                                  "--batch", "333")  # fmt: skip
            assert code == 0, err
            got = read_arrow(out, kind) if fmt == "parquet" else read_csv(out, kind)
            assert got == want, (fmt, args)
