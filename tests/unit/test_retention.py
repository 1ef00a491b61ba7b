"""``[db] retention``: strict durations, errors naming the key, forever by default; every append
table has a retention kind whose rows the schema lets the prune age and key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, PrimaryKeyConstraint, Table

from shared.config import ConfigError, DbConfig, RetentionConfig, load_config
from shared.config_common import retention_seconds
from shared.store import retention
from shared.store.schema import APPEND_TABLES
from shared.store.types import UtcTimestamp


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1h", 3600), ("12h", 43_200), ("30d", 30 * 86400), ("2w", 14 * 86400), ("36500d", 36_500 * 86400)],
)
def test_retentions_parse_exactly(text: str, seconds: int) -> None:
    assert retention_seconds(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "0d", "30", "30m", "90s", "1.5d", "-1d", "30 d", "30D", "36501d", "1000000d", "never", "Forever"],
)
def test_anything_else_is_refused_with_advice(text: str) -> None:
    with pytest.raises(ValueError, match=r'e\.g\. "12h", "30d", "2w"'):
        retention_seconds(text)


def test_default_keeps_everything_forever() -> None:
    assert DbConfig().retention.seconds() == {}
    assert retention.targets(DbConfig().retention) == []
    assert retention_seconds("forever") is None


def _load(tmp_path: Path, body: str) -> DbConfig:
    path = tmp_path / "kx.toml"
    path.write_text(body)
    return load_config(path, environ={}).db


def test_config_reads_inline_and_sub_tables(tmp_path: Path) -> None:
    db = _load(tmp_path, '[db]\nretention = { deltas = "30d", snapshots = "90d", trades = "forever" }\n')
    assert db.retention.seconds() == {"deltas": 30 * 86400, "snapshots": 90 * 86400}
    db = _load(tmp_path, '[db.retention]\ntickers = "2w"\n')
    assert db.retention.seconds() == {"tickers": 14 * 86400}


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('[db]\nretention = { deltas = "30m" }\n', "[db.retention] deltas = '30m' is not a retention"),
        ('[db]\nretention = { delta = "30d" }\n', "[db.retention] Object contains unknown field `delta`"),
        ("[db]\nretention = { trades = 30 }\n", "[db.retention.trades] Expected `str`, got `int`"),
        ("[db]\nprune_interval_s = 0\n", "[db.prune_interval_s] Expected `float` >= 1.0"),
        ("[db]\nprune_batch_rows = 10\n", "[db.prune_batch_rows] Expected `int` >= 100"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, body: str, said: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, body)
    assert said in str(err.value)


def test_every_append_table_has_one_kind_and_every_kind_a_config_key() -> None:
    assert sorted(retention.KIND_TABLES.values()) == sorted(t.name for t in APPEND_TABLES)
    assert set(retention.KIND_TABLES) == {f.name for f in msgspec.structs.fields(RetentionConfig)}


def test_every_table_resolves_a_time_column_and_a_key() -> None:
    # A schema change that leaves a table no time to age by or no key fails here, not in the writer.
    everything = RetentionConfig(**{k: "1d" for k in retention.KIND_TABLES})
    targets = retention.targets(everything)
    assert {t.kind for t in targets} == set(retention.KIND_TABLES)
    now = datetime(2026, 12, 4, tzinfo=UTC)
    for t in targets:
        assert t.cutoff(now) == now - timedelta(days=1)
        assert t.layout.newest in t.table.c and t.layout.oldest in t.table.c


def test_layout_of_a_row_table_and_of_a_packed_run_table() -> None:
    md = MetaData()
    rows = Table(
        "r", md, Column("k", BigInteger()), Column("ts", UtcTimestamp()), Column("recv", UtcTimestamp()),
        PrimaryKeyConstraint("k"),
    )  # fmt: skip
    runs = Table(
        "p", md, Column("k", BigInteger()), Column("n", Integer()), Column("ts_lo", UtcTimestamp()),
        Column("ts_hi", UtcTimestamp()), Column("recv_lo", UtcTimestamp()), Column("body", LargeBinary()),
        PrimaryKeyConstraint("k"),
    )  # fmt: skip
    assert retention.layout(rows) == retention.Layout("ts", "ts", "recv", None)
    # A run goes only when its newest item is past the cutoff; its items are counted by n.
    assert retention.layout(runs) == retention.Layout("ts_hi", "ts_lo", "recv_lo", "n")
    bare = Table("b", md, Column("k", BigInteger()), PrimaryKeyConstraint("k"))
    with pytest.raises(retention.RetentionError, match="table b: no timestamp column"):
        retention.layout(bare)
    keyless = Table("b", MetaData(), Column("ts", UtcTimestamp()))
    with pytest.raises(retention.RetentionError, match="no primary key"):
        retention.targets(RetentionConfig(trades="1d"), {"trades": keyless})
    with pytest.raises(retention.RetentionError, match="the schema has no table trades"):
        retention.targets(RetentionConfig(trades="1d"), {})
