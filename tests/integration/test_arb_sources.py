"""Odds sources: The Odds API client against the simulator's real HTTP endpoint (quota
headers, a refused key, an unknown sport), and the file/directory replay."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from services.arb.odds import parse_events
from services.arb.sources import AUTH_WAIT_S, QUOTA_WAIT_S, OddsApi, OddsFiles
from tests.support.sim_client import running_sim


def test_odds_api_against_the_simulator() -> None:
    async def go() -> None:
        async with running_sim(markets=40) as sim:
            api = OddsApi(sim.odds_url, "any-key", ["basketball_nba", "icehockey_nhl"], min_remaining=10)
            try:
                now = 1000.0
                fetched = await api.fetch_all(now)
                assert [f.error for f in fetched] == ["", ""]
                events = [e for f in fetched for e in parse_events(f.body or b"", "multiplicative").events]
                assert events and all(len(e.books) == 5 for e in events)
                # x-requests-used / -remaining as the simulator counts them
                assert api.used == 2 and api.remaining == 500_000 - 2
                assert not api.held(now)

                # Fewer requests left than the floor: polling stops for a long while.
                api.min_remaining = 600_000
                await api.fetch_all(now)
                assert api.held(now + QUOTA_WAIT_S - 1) and not api.held(now + QUOTA_WAIT_S + 1)
                assert [f.error for f in await api.fetch_all(now + 1)] == ["held", "held"]
            finally:
                await api.close()

            # No key: 401, and no new request for a long while.
            nokey = OddsApi(sim.odds_url, "", ["basketball_nba"])
            try:
                (f,) = await nokey.fetch_all(0.0)
                assert (f.error, f.status) == ("auth", 401)
                assert nokey.held(AUTH_WAIT_S - 1)
            finally:
                await nokey.close()

            # A sport the API does not list is left alone; the others still asked.
            mixed = OddsApi(sim.odds_url, "k", ["soccer_usa_mls", "basketball_nba"])
            try:
                first = await mixed.fetch_all(0.0)
                assert [(f.error, f.status) for f in first] == [("unknown_sport", 404), ("", 200)]
                again = await mixed.fetch_all(1.0)
                assert [f.error for f in again] == ["held", ""]
            finally:
                await mixed.close()

    asyncio.run(go())


def test_odds_files_replay_a_directory_in_name_order_and_reread_a_changed_file(tmp_path: Path) -> None:
    d = tmp_path / "replay"
    d.mkdir()
    (d / "002.json").write_text("[2]")
    (d / "001.json").write_text("[1]")
    (d / "notes.txt").write_text("ignored")
    files = OddsFiles(d)
    assert [(p.name, b) for p, b in files.next()] == [("001.json", b"[1]")]
    assert [(p.name, b) for p, b in files.next()] == [("002.json", b"[2]")]
    assert files.next() == []
    (d / "001.json").write_text("[1, 1]")
    os.utime(d / "001.json", ns=(1, 10**18))
    assert [(p.name, b) for p, b in files.next()] == [("001.json", b"[1, 1]")]

    one = OddsFiles(d / "002.json")
    assert [b for _, b in one.next()] == [b"[2]"]
    assert one.next() == []
    assert OddsFiles(tmp_path / "missing.json").next() == []
