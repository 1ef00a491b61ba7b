"""Per-league team tables (``config/teams/*.toml``) and team-name normalisation.

A table names the Kalshi series it covers, The Odds API sport key, the team order in
event tickers, the number of outcome markets per game, and Kalshi team code ->
sportsbook name (plus optional aliases)::

    league = "NFL"
    series = ["KXNFLGAME"]
    sport_key = "americanfootball_nfl"
    order = "away_home"          # or "home_away" (soccer)
    outcomes = 2                 # 3 when a tie is its own market (code TIE)
    [teams]
    BUF = "Buffalo Bills"
    [aliases]
    JAC = ["JAX"]
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import CONFIG_DIR, ConfigError

#: The project's tables (``config/teams`` in a checkout; package data in an install).
DEFAULT_TEAMS_DIR = CONFIG_DIR / "teams"
DRAW = "Draw"
_NON_WORD = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=65_536)
def normalize(name: str) -> str:
    """Case, accents, punctuation and ``&`` folded away: ``Montréal Canadiens`` -> ``montreal canadiens``."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold().replace("&", " and ")
    return " ".join(_NON_WORD.sub(" ", text).split())


@dataclass(frozen=True)
class League:
    name: str
    series: tuple[str, ...]
    sport_key: str
    home_first: bool
    outcomes: int
    teams: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def names(self, code: str) -> list[str]:
        """Every name the table knows for ``code`` (the main one first)."""
        out = [self.teams[code]] if code in self.teams else []
        out.extend(self.aliases.get(code, ()))
        return out


def _league(path: Path, raw: dict[str, Any]) -> League:
    def need(key: str, kind: type) -> Any:
        value = raw.get(key)
        if not isinstance(value, kind):
            raise ConfigError(f"{path}: {key!r} must be a {kind.__name__}")
        return value

    known = {"league", "series", "sport_key", "order", "outcomes", "teams", "aliases"}
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"{path}: unknown keys {extra}")
    series = need("series", list)
    if not series or not all(isinstance(s, str) and s for s in series):
        raise ConfigError(f"{path}: 'series' must list series tickers")
    order = need("order", str)
    if order not in ("away_home", "home_away"):
        raise ConfigError(f"{path}: 'order' must be away_home or home_away")
    outcomes = need("outcomes", int)
    if outcomes not in (2, 3):
        raise ConfigError(f"{path}: 'outcomes' must be 2 or 3")
    teams = need("teams", dict)
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in teams.items()):
        raise ConfigError(f"{path}: [teams] maps codes to names (strings)")
    aliases_raw = raw.get("aliases", {})
    if not isinstance(aliases_raw, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in aliases_raw.values()
    ):
        raise ConfigError(f"{path}: [aliases] maps codes to lists of names")
    return League(
        name=need("league", str),
        series=tuple(series),
        sport_key=need("sport_key", str),
        home_first=order == "home_away",
        outcomes=outcomes,
        teams=dict(teams),
        aliases={k: tuple(v) for k, v in aliases_raw.items()},
    )


def load_leagues(directory: str | Path | None = None) -> dict[str, League]:
    """Series ticker -> League, from every ``*.toml`` in ``directory``."""
    root = Path(directory) if directory else DEFAULT_TEAMS_DIR
    if not root.is_dir():
        raise ConfigError(f"[arb] teams_dir: {root} is not a directory")
    out: dict[str, League] = {}
    for path in sorted(root.glob("*.toml")):
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        league = _league(path, raw)
        for s in league.series:
            if s in out:
                raise ConfigError(f"{path}: series {s} is already in the {out[s].name} table")
            out[s] = league
    return out
