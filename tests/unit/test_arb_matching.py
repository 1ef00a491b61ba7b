"""Event tickers, team tables, sportsbook JSON and the game <-> sportsbook event match."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from services.arb.leagues import League, load_leagues, normalize
from services.arb.matching import Game, match_game, name_score
from services.arb.odds import OddsEvent, iso_ms, parse_events
from services.arb.tickers import outcome_code, parse_game, series_of
from services.exchange_sim.teams import LEAGUES as SIM_LEAGUES
from shared.config import ConfigError

LEAGUES = load_leagues()


# ---- tickers ---------------------------------------------------------------------------------


def test_outcome_code_strips_the_event_ticker_never_splits() -> None:
    assert outcome_code("KXNFLGAME-26JAN04BALPIT-PIT", "KXNFLGAME-26JAN04BALPIT") == "PIT"
    assert outcome_code("KXNCAAFGAME-26SEP19M-OHBALL-M-OH", "KXNCAAFGAME-26SEP19M-OHBALL") == "M-OH"
    assert outcome_code("KXNFLGAME-26JAN04BALPIT", "KXNFLGAME-26JAN04BALPIT") is None
    assert outcome_code("KXNFLGAME-X-PIT", "") is None


@pytest.mark.parametrize(
    ("event", "series", "codes", "want"),
    [
        (
            "KXNFLGAME-26JAN04BALPIT",
            "KXNFLGAME",
            {"BAL", "PIT"},
            (dt.date(2026, 1, 4), None, "BAL", "PIT", 0),
        ),
        ("KXNBAGAME-26FEB04MEMSAC", "KXNBAGAME", {"SAC"}, (dt.date(2026, 2, 4), None, "MEM", "SAC", 0)),
        (
            "KXMLBGAME-26JUL292210SEALAD",
            "KXMLBGAME",
            {"SEA", "LAD"},
            (dt.date(2026, 7, 29), 22 * 60 + 10, "SEA", "LAD", 0),
        ),
        (
            "KXMLBGAME-26JUL29SEALADG2",
            "KXMLBGAME",
            {"SEA", "LAD"},
            (dt.date(2026, 7, 29), None, "SEA", "LAD", 2),
        ),
        (
            "KXNCAAFGAME-26SEP19M-OHBALL",
            "KXNCAAFGAME",
            {"M-OH", "BALL"},
            (dt.date(2026, 9, 19), None, "M-OH", "BALL", 0),
        ),
        (
            "KXEPLGAME-26MAR15ARSEVE",
            "KXEPLGAME",
            {"ARS", "EVE", "TIE"},
            (dt.date(2026, 3, 15), None, "ARS", "EVE", 0),
        ),
        ("KXNFLGAME-26JAN04LACLA", "KXNFLGAME", {"LAC", "LA"}, (dt.date(2026, 1, 4), None, "LAC", "LA", 0)),
    ],
)
def test_parse_game(event: str, series: str, codes: set[str], want: tuple[object, ...]) -> None:
    lg = LEAGUES[series]
    g = parse_game(event, series, codes, lg.teams)
    assert g is not None
    assert (g.date, g.start_min, g.team1, g.team2, g.game) == want


def test_parse_game_refuses_to_guess() -> None:
    # Both ABC|DEF and AB|CDEF are pairs of known codes: ambiguous, so nothing.
    assert parse_game("KXX-26JAN04ABCDEF", "KXX", (), {"ABC", "DEF", "AB", "CDEF"}) is None
    # Unknown codes, bad month, bad day, wrong series.
    assert parse_game("KXNFLGAME-26JAN04QQQZZZ", "KXNFLGAME", (), LEAGUES["KXNFLGAME"].teams) is None
    assert parse_game("KXNFLGAME-26JUX04BALPIT", "KXNFLGAME", {"BAL", "PIT"}) is None
    assert parse_game("KXNFLGAME-26FEB30BALPIT", "KXNFLGAME", {"BAL", "PIT"}) is None
    assert parse_game("KXNBAGAME-26JAN04BALPIT", "KXNFLGAME", {"BAL", "PIT"}) is None


def test_series_of() -> None:
    watched = {"KXNFLGAME"}
    assert series_of("KXNFLGAME-26JAN04BALPIT-PIT", watched) == "KXNFLGAME"
    assert series_of("KXNFLGAMEX-26JAN04BALPIT-PIT", watched) is None
    assert series_of("KXFEDDECISION-26JAN-H0", watched) is None


# ---- team tables -----------------------------------------------------------------------------


def test_shipped_tables_cover_every_simulated_league_and_name() -> None:
    for sim in SIM_LEAGUES:
        lg = LEAGUES[sim.series]
        assert lg.sport_key == sim.sport_key
        assert lg.home_first == sim.soccer
        assert lg.outcomes == (3 if sim.soccer else 2)
        for code, name in sim.teams:
            assert normalize(name) in {normalize(n) for n in lg.names(code)}, (sim.series, code, name)


def test_bad_table_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('league = "X"\nseries = ["KXX"]\nsport_key = "x"\norder = "up"\n')
    with pytest.raises(ConfigError, match="order"):
        load_leagues(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_leagues(tmp_path / "missing")


def test_normalize() -> None:
    assert normalize("Montréal Canadiens") == "montreal canadiens"
    assert normalize("St. Louis Blues") == normalize("St Louis Blues")
    assert normalize("Brighton & Hove Albion") == "brighton and hove albion"


def test_name_score() -> None:
    assert name_score(["Buffalo Bills"], "Buffalo Bills") == 1.0
    assert name_score(["Bills"], "Buffalo Bills") == 0.9
    assert name_score(["Buffalo"], "Miami Dolphins") == 0.0


# ---- sportsbook JSON ---------------------------------------------------------------------------


def odds_event(
    home: str, away: str, commence: str, prices: list[tuple[str, int]] | None = None, draw: int | None = None
) -> dict[str, object]:
    books = prices or [("draftkings", 0), ("fanduel", 0)]
    out = []
    for key, shift in books:
        outcomes = [{"name": home, "price": -150 + shift}, {"name": away, "price": 130 - shift}]
        if draw is not None:
            outcomes.append({"name": "Draw", "price": draw})
        out.append(
            {
                "key": key,
                "title": key,
                "last_update": "2026-01-04T17:00:00Z",
                "markets": [{"key": "h2h", "last_update": "2026-01-04T17:00:00Z", "outcomes": outcomes}],
            }
        )
    return {
        "id": f"{away}@{home}@{commence}",
        "sport_key": "americanfootball_nfl",
        "sport_title": "NFL",
        "commence_time": commence,
        "home_team": home,
        "away_team": away,
        "bookmakers": out,
    }


def test_parse_odds_api_json() -> None:
    raw = json.dumps([odds_event("Pittsburgh Steelers", "Baltimore Ravens", "2026-01-04T18:00:00Z")]).encode()
    res = parse_events(raw, "multiplicative")
    assert res.rejected == {}
    (ev,) = res.events
    assert ev.commence_ms == iso_ms("2026-01-04T18:00:00Z")
    line = ev.books["draftkings"]
    # -150 / +130: q = 0.6 and 0.434783; multiplicative: 0.579832 / 0.420168
    assert line.probs == {"pittsburgh steelers": 579_832, "baltimore ravens": 420_168}
    assert line.updated_ms == iso_ms("2026-01-04T17:00:00Z")


def test_parse_decimal_odds_and_single_event_object() -> None:
    ev = odds_event("A Team", "B Team", "2026-01-04T18:00:00Z")
    for bm in ev["bookmakers"]:  # type: ignore[attr-defined]
        bm["markets"][0]["outcomes"] = [{"name": "A Team", "price": 1.8}, {"name": "B Team", "price": 2.2}]
    res = parse_events(json.dumps(ev), "multiplicative")
    # 1/1.8 = 0.5556, 1/2.2 = 0.4545; share of 0.5556: 0.55 exactly
    assert res.events[0].books["fanduel"].probs == {"a team": 550_000, "b team": 450_000}


def test_parse_rejects_and_counts_bad_lines() -> None:
    ev = odds_event("A Team", "B Team", "2026-01-04T18:00:00Z")
    books = ev["bookmakers"]
    books[0]["markets"][0]["key"] = "spreads"  # type: ignore[index]
    books[1]["markets"][0]["outcomes"][1]["name"] = "C Team"  # type: ignore[index]
    res = parse_events(json.dumps([ev]), "multiplicative")
    assert res.events[0].books == {}
    assert res.rejected == {"no_h2h": 1, "outcomes": 1}
    assert parse_events(b"{not json", "multiplicative").rejected == {"bad_json": 1}


# ---- matching ------------------------------------------------------------------------------------


def nfl_game(event: str, codes: dict[str, str], league: League | None = None) -> Game:
    return Game(
        event,
        "KXNFLGAME",
        league or LEAGUES["KXNFLGAME"],
        markets={c: f"{event}-{c}" for c in codes},
        sub_titles=dict(codes),
    )


def odds(home: str, away: str, commence: str, oid: str = "") -> OddsEvent:
    return OddsEvent(oid or f"{away}@{home}@{commence}", "americanfootball_nfl", iso_ms(commence), home, away)


def test_match_by_league_date_and_teams() -> None:
    game = nfl_game("KXNFLGAME-26JAN04BALPIT", {"BAL": "Baltimore", "PIT": "Pittsburgh"})
    parsed = parse_game(game.event_ticker, "KXNFLGAME", game.markets, LEAGUES["KXNFLGAME"].teams)
    # 8:20 pm ET on Jan 4 is 01:20 UTC on Jan 5: the ticker's date is the Eastern one.
    right = odds("Pittsburgh Steelers", "Baltimore Ravens", "2026-01-05T01:20:00Z", "right")
    week_later = odds("Pittsburgh Steelers", "Baltimore Ravens", "2026-01-12T01:20:00Z", "later")
    other = odds("Miami Dolphins", "Buffalo Bills", "2026-01-05T01:20:00Z", "other")
    res = match_game(game, parsed, [other, week_later, right], 0.9)
    assert res.matched and res.odds_id == "right" and res.confidence == 1.0
    assert res.outcomes == {
        "KXNFLGAME-26JAN04BALPIT-BAL": "baltimore ravens",
        "KXNFLGAME-26JAN04BALPIT-PIT": "pittsburgh steelers",
    }


def test_unknown_code_falls_back_to_the_sub_title_with_less_confidence() -> None:
    table = LEAGUES["KXNFLGAME"]
    thin = League(table.name, table.series, table.sport_key, False, 2, {"PIT": "Pittsburgh Steelers"})
    game = nfl_game("KXNFLGAME-26JAN04BALPIT", {"BAL": "Ravens", "PIT": "Pittsburgh"}, thin)
    parsed = parse_game(game.event_ticker, "KXNFLGAME", game.markets, thin.teams)
    ev = odds("Pittsburgh Steelers", "Baltimore Ravens", "2026-01-04T18:00:00Z")
    strict = match_game(game, parsed, [ev], 0.95)
    assert (
        not strict.matched and strict.reason == "low_confidence" and strict.confidence == pytest.approx(0.9)
    )
    assert match_game(game, parsed, [ev], 0.9).matched


def test_ambiguous_and_missing_candidates_are_never_guessed() -> None:
    game = nfl_game("KXNFLGAME-26JAN04BALPIT", {"BAL": "Baltimore", "PIT": "Pittsburgh"})
    parsed = parse_game(game.event_ticker, "KXNFLGAME", game.markets, LEAGUES["KXNFLGAME"].teams)
    a = odds("Pittsburgh Steelers", "Baltimore Ravens", "2026-01-04T18:00:00Z", "a")
    b = odds("Pittsburgh Steelers", "Baltimore Ravens", "2026-01-04T21:00:00Z", "b")
    assert match_game(game, parsed, [a, b], 0.9).reason == "ambiguous"
    assert match_game(game, parsed, [], 0.9).reason == "no_candidates"
    assert match_game(game, parsed, None, 0.9).reason == "no_odds"
    assert match_game(game, None, [a], 0.9).reason == "unparsed"
    nolg = Game(game.event_ticker, "KXNFLGAME", None, game.markets, game.sub_titles)
    assert match_game(nolg, parsed, [a], 0.9).reason == "no_league"


@pytest.mark.parametrize(
    ("event", "want"),
    [
        # a doubleheader's second game, no start time in the ticker: the later of the two by start order
        pytest.param(
            "KXMLBGAME-26JUL29SEALADG2", "late", id="doubleheader_without_start_time_goes_by_start_order"
        ),
        # 13:10 US Eastern in the ticker is 17:10Z: that game, not the later one
        pytest.param("KXMLBGAME-26JUL291310SEALAD", "early", id="start_time_in_the_ticker_picks_the_game"),
    ],
)
def test_two_games_on_one_day_are_told_apart(event: str, want: str) -> None:
    mlb = LEAGUES["KXMLBGAME"]
    game = Game(event, "KXMLBGAME", mlb, {"SEA": f"{event}-SEA", "LAD": f"{event}-LAD"}, {})
    parsed = parse_game(event, "KXMLBGAME", game.markets, mlb.teams)
    early = OddsEvent(
        "early", "baseball_mlb", iso_ms("2026-07-29T17:10:00Z"), "Los Angeles Dodgers", "Seattle Mariners"
    )
    late = OddsEvent(
        "late", "baseball_mlb", iso_ms("2026-07-29T23:10:00Z"), "Los Angeles Dodgers", "Seattle Mariners"
    )
    res = match_game(game, parsed, [late, early], 0.9)
    assert res.matched and res.odds_id == want


def test_soccer_lists_home_first_and_maps_the_tie() -> None:
    epl = LEAGUES["KXEPLGAME"]
    event = "KXEPLGAME-26MAR15ARSEVE"
    codes = {"ARS": "Arsenal", "EVE": "Everton", "TIE": "Tie"}
    game = Game(event, "KXEPLGAME", epl, {c: f"{event}-{c}" for c in codes}, codes)
    parsed = parse_game(event, "KXEPLGAME", game.markets, epl.teams)
    ev = OddsEvent("x", "soccer_epl", iso_ms("2026-03-15T15:00:00Z"), "Arsenal", "Everton")
    res = match_game(game, parsed, [ev], 0.9)
    assert res.matched and res.confidence == 1.0
    assert res.outcomes == {f"{event}-ARS": "arsenal", f"{event}-EVE": "everton", f"{event}-TIE": "draw"}
    # The same teams the other way round (Everton at home) is a different fixture: penalised.
    rev = OddsEvent("y", "soccer_epl", iso_ms("2026-03-15T15:00:00Z"), "Everton", "Arsenal")
    swapped = match_game(game, parsed, [rev], 0.96)
    assert not swapped.matched and swapped.reason == "low_confidence"
