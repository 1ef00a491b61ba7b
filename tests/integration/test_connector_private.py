"""Private channels against the real simulator: fill and market_positions are subscribed
only when enabled in config AND the connector signs with a key from the environment.

The simulator accepts private-channel subscriptions (it has no account activity to send),
so what is checked is the exchange side: which channels its connection holds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.control import arequest
from shared.kalshi.auth import SIM_DEV_KEY_ID, ensure_dev_keypair

from .test_connector_support import Stack, metric, stack

PRIVATE = ["fill", "market_positions", "user_orders", "order_group_updates"]


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def sim_channels(st: Stack) -> set[str]:
    (conn,) = st.sim.hub.conns.values()
    return set(conn.session.by_channel)


def with_env_key(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign with the simulator's dev key, but handed over the way a real key is (environment)."""
    path, _ = ensure_dev_keypair(tmp)
    monkeypatch.setenv("KALSHI_KEY_ID", SIM_DEV_KEY_ID)
    monkeypatch.setenv("KALSHI_PRIVATE_KEY_PATH", str(path))


def test_enabled_with_credentials_subscribes_private_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_env_key(tmp_path, monkeypatch)

    async def body() -> None:
        async with stack(tmp_path, connector={"private_channels": PRIVATE}) as st:
            assert st.worker.creds.source == "environment"
            assert sim_channels(st) >= {*PRIVATE, "orderbook_delta"}
            session = st.worker.session
            assert session is not None
            private = session.table.private
            assert set(private) == set(PRIVATE) and all(s.sid for s in private.values())
            # The exchange's sids are the ones the connector tracks.
            (conn,) = st.sim.hub.conns.values()
            assert {ch: private[ch].sid for ch in PRIVATE} == {
                ch: conn.session.by_channel[ch].sid for ch in PRIVATE
            }
            listed = await arequest(st.cfg.connector.control, "subscriptions", timeout_s=5.0)
            assert set(PRIVATE) <= {s["channel"] for s in listed["subscriptions"]}

    run(body())


def test_disabled_subscribes_no_private_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_env_key(tmp_path, monkeypatch)

    async def body() -> None:
        async with stack(tmp_path) as st:
            channels = sim_channels(st)
            assert "orderbook_delta" in channels and "market_lifecycle_v2" in channels
            assert not channels & set(PRIVATE)
            assert st.worker.session is not None and st.worker.session.table.private == {}

    run(body())


def test_enabled_without_credentials_is_skipped_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KALSHI_KEY_ID", raising=False)
    monkeypatch.delenv("KALSHI_PRIVATE_KEY_PATH", raising=False)
    before = {ch: metric("kxfeed_connector_private_channels_skipped_total", channel=ch) for ch in PRIVATE}

    async def body() -> None:
        async with stack(tmp_path, connector={"private_channels": PRIVATE}) as st:
            assert st.worker.creds.source == "sim-dev-key"
            assert not sim_channels(st) & {"fill", "market_positions"}
            assert st.worker.private == ()
            for ch in PRIVATE:
                got = metric("kxfeed_connector_private_channels_skipped_total", channel=ch)
                assert got - before[ch] == 1

    run(body())
