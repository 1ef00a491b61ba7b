"""The gateway's pure parts: parameter parsing (400 naming the parameter), cursors, the rate
limiter's buckets (a fake clock), the token rules, the gaps answer's shape."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from multidict import MultiDict

from services.gateway.api_history import gaps_body
from services.gateway.errors import ApiError
from services.gateway.limits import RateLimiter, retry_after
from services.gateway.params import Params, encode_cursor, time_range
from shared.config import ConfigError, GatewayConfig
from shared.gateway_token import is_loopback, load_token, token_problem
from shared.store.queries import GapEvent, GapReport, SubscriptionRecord


def refused(fn: object, *args: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args)  # type: ignore[operator]
    assert info.value.status == 400
    return info.value


def test_query_refuses_unknown_and_repeated_parameters() -> None:
    assert refused(Params, MultiDict([("limt", "1")]), ("limit",)).param == "limt"
    assert refused(Params, MultiDict([("limit", "1"), ("limit", "2")]), ("limit",)).param == "limit"


@pytest.mark.parametrize("raw", ["", "-1", "1.0", "1e3", " 5", "99999999999999", "٣"])
def test_integers_are_plain_and_in_range(raw: str) -> None:
    q = Params(MultiDict([("limit", raw)]), ("limit",))
    assert refused(q.integer, "limit", 10, 1, 1000).param == "limit"


def test_times_and_ranges() -> None:
    q = Params(
        MultiDict([("since", "2026-12-03T14:00:00"), ("until", "2026-12-03T15:00:00+01:00")]),
        ("since", "until"),
    )
    since, until = time_range(q)
    assert since == datetime(2026, 12, 3, 14, tzinfo=UTC) and until == since
    bad = Params(
        MultiDict([("since", "2026-12-03T15:00:00Z"), ("until", "2026-12-03T14:00:00Z")]), ("since", "until")
    )
    assert refused(time_range, bad).param == "until"
    for raw in ("yesterday", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59Z", "x" * 100):
        q = Params(MultiDict([("since", raw)]), ("since",))
        assert refused(q.time, "since").param == "since"


def test_cursors_round_trip_and_refuse_forgeries() -> None:
    c = encode_cursor([1_796_000_000_000_000, "KX", "A", "yes"])
    q = Params(MultiDict([("cursor", c)]), ("cursor",))
    assert q.cursor("cursor", (int, str, str, str)) == (1_796_000_000_000_000, "KX", "A", "yes")
    for forged in (encode_cursor(["x"]), encode_cursor([2**70, "a", "b", "c"]), "!!", "e30", "a" * 2000):
        q = Params(MultiDict([("cursor", forged)]), ("cursor",))
        assert refused(q.cursor, "cursor", (int, str, str, str)).param == "cursor"


def test_rate_limiter_buckets() -> None:
    lim = RateLimiter(rate=2.0, burst=3, max_clients=2)
    assert [lim.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert lim.take("a", 0.0) == pytest.approx(0.5)
    assert lim.take("a", 0.5) == 0.0  # one token back after half a second at 2/s
    assert lim.take("b", 0.5) == 0.0 and lim.take("c", 0.5) == 0.0
    assert len(lim) == 2 and lim.evicted == 1  # "a", least recently seen, forgotten
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"
    assert RateLimiter(0.0, 1, 1).take("x", 0.0) == 0.0  # 0 = no limit


def test_token_rules(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.com")
    assert token_problem(GatewayConfig(), {}) == ""
    assert "a token is required" in token_problem(GatewayConfig(host="0.0.0.0"), {})
    assert token_problem(GatewayConfig(host="0.0.0.0"), {"KXFEED_GATEWAY_TOKEN": "t" * 20}) == ""
    assert "16..4096" in token_problem(GatewayConfig(host="0.0.0.0"), {"KXFEED_GATEWAY_TOKEN": "short"})
    f = tmp_path / "tok"
    f.write_text("a-long-enough-token-value\n")
    f.chmod(0o600)
    assert load_token(GatewayConfig(token_file=str(f)), {}) == "a-long-enough-token-value"
    f.chmod(0o604)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_token(GatewayConfig(token_file=str(f)), {})


def test_gaps_body_lists_the_missing_sequence_numbers() -> None:
    ts = datetime(2026, 12, 3, tzinfo=UTC)
    report = GapReport(
        "KXT",
        [SubscriptionRecord(1, 2, 1, 20, 17, [(3, 3), (6, 6), (12, 12)])],
        [
            GapEvent(1, 2, 3, 4, "open", "seq_gap", "", ts),
            GapEvent(1, 2, 3, 4, "recovered", "seq_gap", "snapshot", ts),
        ],
    )
    body = gaps_body(report)
    assert {k: body[k] for k in ("ticker", "gaps", "gap_count", "has_gaps")} == {
        "ticker": "KXT", "gaps": [3, 6, 12], "gap_count": 3, "has_gaps": True,
    }  # fmt: skip
    (g,) = body["recorded"]
    assert (
        g["status"] == "recovered"
        and g["method"] == "snapshot"
        and g["detected"] == "2026-12-03T00:00:00.000000Z"
    )
    big = gaps_body(GapReport("KXT", [SubscriptionRecord(1, 2, 1, 10**6, 5, [(2, 10**6 - 1)])], []))
    assert len(big["gaps"]) == 10_000 and big["gap_count"] == 10**6 - 2 and big["gaps_truncated"]
