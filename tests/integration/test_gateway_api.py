"""The gateway's REST API against the running system (``kxfeed up`` with the simulator, gaps
injected): every route answers, and every answer validates against the OpenAPI document it
serves; errors are JSON naming the parameter; pages chain; the gaps answer has the issue's
shape; a property-based fuzz of every route with any parameters gets no 5xx."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from shared.units import parse_count, parse_price
from tests.e2e.harness import System
from tests.support.config import reported_port
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow

API = "/api/v1"


class Api:
    def __init__(self, system: System) -> None:
        self.system = system
        self.port = reported_port(system.cfg, "gateway", "http")
        status, _, self.doc = self.get(f"{API}/openapi.json")
        assert status == 200
        self._validators: dict[str, Draft202012Validator] = {}

    def get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            status, hdrs, raw = err.code, dict(err.headers), err.read()
        assert hdrs.get("Content-Type", "").startswith("application/json"), (url, status, raw[:200])
        return status, hdrs, json.loads(raw)

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            schema = {"$ref": f"#/components/schemas/{name}", "components": self.doc["components"]}
            self._validators[name] = Draft202012Validator(schema)
        return self._validators[name]

    def check(self, template: str, status: int, body: Any) -> None:
        """``body`` validates against the document's schema for ``template`` and ``status``."""
        responses = self.doc["paths"][template]["get"]["responses"]
        assert str(status) in responses, f"{template}: {status} is not documented"
        ref = responses[str(status)]["content"]["application/json"]["schema"]["$ref"]
        errors = sorted(self.validator(ref.rsplit("/", 1)[1]).iter_errors(body), key=str)
        assert not errors, f"{template} {status}: {errors[0].message} at {list(errors[0].absolute_path)}"
        assert not floats(body), f"{template}: a float in the answer: {floats(body)[:3]}"


def floats(value: Any, path: str = "$") -> list[str]:
    if isinstance(value, float):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in floats(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in floats(v, f"{path}[{i}]")]
    return []


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    system = System(
        tmp,
        sim={"rate": 60.0, "markets": 12, "faults": "gap:0.003"},
        gateway={"rate_per_s": 0.0},
    )
    try:
        system.start()
        a = Api(system)

        def data_flows() -> bool:
            _, _, page = a.get(f"{API}/markets")
            for m in page["markets"]:
                s, _, t = a.get(f"{API}/markets/{m['ticker']}/trades")
                if s == 200 and t["trades"]:
                    return True
            return False

        assert wait_until(data_flows, 120, interval=1.0), system.log_tail()
        yield a
    finally:
        system.stop()
        system.kill()


def tickers(api: Api) -> list[str]:
    _, _, page = api.get(f"{API}/markets", {"limit": "1000"})
    return [m["ticker"] for m in page["markets"]]


def busy_ticker(api: Api) -> str:
    """A market with stored trades and a live book."""
    for t in tickers(api):
        s, _, trades = api.get(f"{API}/markets/{t}/trades")
        b, _, book = api.get(f"{API}/markets/{t}/book")
        if s == 200 and trades["trades"] and b == 200 and book["valid"]:
            return t
    raise AssertionError("no market with trades and a valid book")


def test_every_route_answers_as_documented(api: Api) -> None:
    t = busy_ticker(api)
    paths = api.doc["paths"]
    assert len(paths) == 15
    for template in paths:
        status, _, body = api.get(template.replace("{ticker}", t))
        assert status == 200, (template, body)
        api.check(template, status, body)
    # The answers are real: this market's book, trades, latest state.
    _, _, book = api.get(f"{API}/markets/{t}/book", {"depth": "2"})
    assert book["valid"] and book["seq"] > 0 and len(book["yes"]) <= 2 and book["depth"] == 2
    # Live unless the database stored a top-changing delta the gateway has not heard of yet (a
    # moment on a loaded machine): asked again until the bus state is the newest.
    latest: dict[str, Any] = {}

    def live() -> bool:
        latest.update(api.get(f"{API}/markets/{t}/latest")[2])
        return latest["source"] == "live"

    assert wait_until(live, 30, interval=0.2), latest
    assert latest["top"]["yes_bid"] is not None and latest["seq"] > 0
    _, _, detail = api.get(f"{API}/markets/{t}")
    assert detail["market"]["ticker"] == t and detail["latest"]["ticker"] == t
    _, _, status_ = api.get(f"{API}/status")
    assert {w["worker"] for w in status_["workers"]} >= {"gateway", "orderbook", "writer"}


def test_filters_and_pages(api: Api) -> None:
    _, _, page = api.get(f"{API}/markets", {"limit": "1000"})
    everything = [m["ticker"] for m in page["markets"]]
    assert everything == sorted(everything) and page["next_cursor"] is None
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        status, _, p = api.get(f"{API}/markets", params)
        api.check(f"{API}/markets", status, p)
        seen += [m["ticker"] for m in p["markets"]]
        cursor = p["next_cursor"]
        if cursor is None:
            break
    assert seen == everything
    series = page["markets"][0]["series_ticker"]
    _, _, one = api.get(f"{API}/markets", {"series": series})
    assert one["markets"] and {m["series_ticker"] for m in one["markets"]} == {series}
    word = page["markets"][0]["title"].split()[0].lower()
    _, _, found = api.get(f"{API}/markets", {"q": word})
    assert found["markets"] and all(word in json.dumps(m).lower() for m in found["markets"])

    t = busy_ticker(api)
    ids: list[str] = []
    cursor = None
    for _ in range(4):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, _, p = api.get(f"{API}/markets/{t}/trades", params)
        api.check(f"{API}/markets/{{ticker}}/trades", status, p)
        ids += [x["trade_id"] for x in p["trades"]]
        cursor = p["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == len(set(ids)) and ids
    first = api.get(f"{API}/markets/{t}/trades", {"limit": "1"})[2]["trades"][0]
    status, _, later = api.get(f"{API}/markets/{t}/trades", {"since": first["ts"], "limit": "1"})
    assert status == 200 and later["trades"][0]["ts"] >= first["ts"]
    _, _, none = api.get(f"{API}/markets/{t}/trades", {"until": "1971-01-01T00:00:00Z"})
    assert none["trades"] == [] and none["next_cursor"] is None


def test_errors_are_json_and_name_the_parameter(api: Api) -> None:
    t = busy_ticker(api)
    cases = [
        (f"{API}/markets", {"limit": "0"}, "limit"),
        (f"{API}/markets", {"limit": "abc"}, "limit"),
        (f"{API}/markets", {"limt": "5"}, "limt"),
        (f"{API}/markets", {"cursor": "!!!"}, "cursor"),
        (f"{API}/markets/{t}/trades", {"since": "yesterday"}, "since"),
        (
            f"{API}/markets/{t}/trades",
            {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            "until",
        ),
        (f"{API}/markets/{t}/deltas", {"cursor": "eyJ4IjoxfQ"}, "cursor"),
        (f"{API}/markets/{t}/book", {"depth": "-1"}, "depth"),
        (f"{API}/markets/{t}/book", {"at": "noon"}, "at"),
        (f"{API}/scan/movers", {"by": "price"}, "by"),
        (f"{API}/scan/spreads", {"top": "100000"}, "top"),
        (f"{API}/signals", {"ticker": "not a ticker"}, "ticker"),
    ]
    for path, params, param in cases:
        status, _, body = api.get(path, params)
        assert status == 400 and body["param"] == param, (path, params, body)
    status, _, body = api.get(f"{API}/markets/KXNOSUCH-MARKET/gaps")
    assert status == 404 and body["error"] == "not_found" and "KXNOSUCH-MARKET" in body["detail"]
    for path in (
        f"{API}/markets/KXNOSUCH-MARKET",
        f"{API}/markets/KXNOSUCH-MARKET/book",
        f"{API}/nope",
        "/api/v2/x",
    ):
        status, _, body = api.get(path)
        assert status == 404 and set(body) >= {"error", "detail"}, (path, body)


def test_book_at_a_moment_is_the_stored_book_rebuilt_by_the_book_core(api: Api) -> None:
    import asyncio

    from shared.book.at import book_at
    from shared.store.engine import make_engine

    t = busy_ticker(api)
    snaps = api.get(f"{API}/markets/{t}/snapshots")[2]["snapshots"]
    first = min(datetime.fromisoformat(s["ts"]) for s in snaps if s["source"] == "ws" and s["seq"] > 0)
    at = first + timedelta(seconds=1)  # a moment with a snapshot before it and deltas after
    iso = at.isoformat().replace("+00:00", "Z")
    # Once a delta of the market newer than the moment is stored, what the moment's book is
    # built from is stored too: the gateway's answer and the core's, asked directly, agree.
    assert wait_until(lambda: bool(api.get(f"{API}/markets/{t}/deltas", {"since": iso})[2]["deltas"]), 60)
    status, _, body = api.get(f"{API}/markets/{t}/book", {"at": iso, "depth": "0"})
    assert status == 200, json.dumps([iso, body, snaps])
    api.check(f"{API}/markets/{{ticker}}/book", status, body)

    async def direct() -> dict[str, Any]:
        engine = make_engine(api.system.cfg.db)
        try:
            return (await book_at(engine, t, at)).answer(0)
        finally:
            await engine.dispose()

    want = asyncio.run(direct())
    assert body["valid"] == want["valid"] and body["seq"] == want["xseq"] > 0
    assert body["snapshot_seq"] == want["snapshot_xseq"] and body["deltas"] == want["deltas"]
    assert [(parse_price(p), parse_count(n)) for p, n in body["yes"]] == [tuple(x) for x in want["yes"]]
    assert len(body["no"]) == len(want["no"]) and body["at"] == want["at"]
    status, _, body = api.get(f"{API}/markets/{t}/book", {"at": "2001-01-01T00:00:00Z"})
    assert status == 404 and "snapshot" in body["detail"]


def test_gaps_have_the_issue_shape_and_their_recovery(api: Api) -> None:
    found: dict[str, Any] = {}

    def some_gap() -> bool:
        for t in tickers(api):
            status, _, body = api.get(f"{API}/markets/{t}/gaps")
            api.check(f"{API}/markets/{{ticker}}/gaps", status, body)
            if body["has_gaps"] and any(g["status"] == "recovered" for g in body["recorded"]):
                found.update(body)
                return True
        return False

    assert wait_until(some_gap, 120, interval=2.0), "the simulator's injected gaps never showed"
    body = found
    assert {"ticker", "gaps", "gap_count", "has_gaps"} <= set(body)
    assert body["gap_count"] == len(body["gaps"]) > 0 and body["has_gaps"] is True
    holes = body["holes"]
    for seq in body["gaps"]:
        assert any(h["first"] <= seq <= h["last"] for h in holes)
    assert sum(h["count"] for h in holes) == body["gap_count"]
    recovered = [g for g in body["recorded"] if g["status"] == "recovered"]
    assert all(g["recovered"] and g["method"] for g in recovered)


def test_metrics_count_requests_by_route_and_status(api: Api) -> None:
    api.get(f"{API}/markets/KXNOSUCH-MARKET/gaps")
    port = reported_port(api.system.cfg, "gateway")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'kxfeed_gateway_requests_total{route="/api/v1/markets/{ticker}/gaps",status="404"}' in text
    assert 'kxfeed_gateway_requests_total{route="/api/v1/markets",status="200"}' in text
    assert 'kxfeed_gateway_request_seconds_bucket{le="0.005",route="/api/v1/markets"}' in text
    assert "kxfeed_gateway_bus_messages_total" in text


# ---- the fuzz ----------------------------------------------------------------------------------
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
_VALUE = st.one_of(
    _TEXT,
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        ["", "0", "1", "-1", "1e3", "0x10", " 5", "NaN", "2026-12-03T14:00:00Z", "9999-12-31T23:59:59-23:59"]
    ),
)


PARAM_NAMES = ["limit", "cursor", "since", "until", "depth", "top", "q", "series", "event", "status", "by"]
PARAM_NAMES += ["order", "window_s", "older_than_s", "ticker", "strategy"]


@st.composite
def requests(draw: st.DrawFn, paths: list[str], known: list[str]) -> tuple[str, str, str, dict[str, str]]:
    template = draw(st.sampled_from(paths))
    ticker = draw(st.one_of(st.sampled_from(known), _TEXT.filter(bool)))
    path = template.replace("{ticker}", urllib.parse.quote(ticker, safe=""))
    names = draw(st.lists(st.one_of(st.sampled_from(PARAM_NAMES), _TEXT), max_size=4))
    return template, ticker, path, {n: draw(_VALUE) for n in names}


def test_fuzz_every_route_never_answers_5xx(api: Api) -> None:
    paths = list(api.doc["paths"])
    known = tickers(api)[:3]
    answered: list[int] = []

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(requests(paths, known))
    def one(req: tuple[str, str, str, dict[str, str]]) -> None:
        template, ticker, path, params = req
        status, _, body = api.get(path, params)
        assert status < 500, (path, params, status, body)
        answered.append(status)
        if "/" in ticker and "{ticker}" in template:
            # The router sees the decoded path: another route, or none, answers it.
            assert status == 200 or set(body) >= {"error", "detail"}
        else:
            api.check(template, status, body)

    one()
    assert len(answered) >= 400 and {200, 400, 404} <= set(answered), sorted(set(answered))
