"""Market filters and shard selection (pure)."""

from __future__ import annotations

import zlib

import pytest

from shared.config import ConnectorConfig
from shared.kalshi.discovery import MarketFilter, shard_of


def test_no_filter_takes_every_market() -> None:
    f = MarketFilter()
    assert not f.explicit
    assert f.wants("ANY-1", "ANY", "") and f.wants("X-2", "X", "Politics")


def test_filters_are_a_union() -> None:
    f = MarketFilter.from_config(
        ConnectorConfig(series=["KXNBAGAME"], categories=["Economics"], tickers=["T-1"])
    )
    assert f.wants("KXNBAGAME-A-B", "KXNBAGAME", "Sports")
    assert f.wants("KXFED-1", "KXFED", "economics")  # category match ignores case
    assert f.wants("T-1", "OTHER", "Politics")
    assert not f.wants("KXNFLGAME-A-B", "KXNFLGAME", "Sports")


def test_sports_only_narrows_everything() -> None:
    f = MarketFilter.from_config(ConnectorConfig(sports_only=True))
    assert f.wants("KXNBAGAME-A-B", "KXNBAGAME", "Sports")
    assert not f.wants("KXFED-1", "KXFED", "Economics")
    g = MarketFilter.from_config(ConnectorConfig(sports_only=True, tickers=["KXFED-1"]))
    assert not g.wants("KXFED-1", "KXFED", "Economics")


def test_shards_partition_by_a_stable_hash() -> None:
    tickers = [f"KXNBAGAME-26NOV{d:02d}AAABBB-{s}" for d in range(1, 29) for s in ("AAA", "BBB")]
    shards = [MarketFilter.from_config(ConnectorConfig(shard_count=3), shard_index=i) for i in range(3)]
    owners = [[i for i, f in enumerate(shards) if f.in_shard(t)] for t in tickers]
    assert all(len(o) == 1 for o in owners)  # each ticker in exactly one shard
    assert {o[0] for o in owners} == {0, 1, 2}
    # Stable across processes and versions: crc32, not Python's salted hash().
    assert shard_of("KXNBAGAME-26NOV03LALBOS-LAL", 7) == zlib.crc32(b"KXNBAGAME-26NOV03LALBOS-LAL") % 7


def test_bad_shard_refused() -> None:
    with pytest.raises(ValueError):
        MarketFilter.from_config(ConnectorConfig(shard_count=2), shard_index=2)
    with pytest.raises(ValueError):
        MarketFilter.from_config(ConnectorConfig(shard_count=0))
