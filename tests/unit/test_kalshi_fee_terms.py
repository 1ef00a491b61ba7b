"""One rule for the fee terms of a market, used by every MarketMeta publisher."""

from __future__ import annotations

import msgspec
import pytest

from shared.kalshi.parse import fee_terms
from shared.kalshi.rest_models import Event, Series
from shared.units import UnitError


def _series(fee_type: str, multiplier: bytes) -> Series:
    return msgspec.json.decode(
        b'{"ticker":"KXNFLGAME","fee_type":"'
        + fee_type.encode()
        + b'","fee_multiplier":'
        + multiplier
        + b"}",
        type=Series,
    )


def test_series_terms_apply_without_overrides() -> None:
    assert fee_terms(_series("quadratic", b"1")) == ("quadratic", 1_000_000)
    assert fee_terms(_series("quadratic_with_maker_fees", b"0.5")) == ("quadratic_with_maker_fees", 500_000)


def test_event_overrides_win_over_the_series() -> None:
    s = _series("quadratic", b"1")
    assert fee_terms(s, "flat", None) == ("flat", 1_000_000)
    assert fee_terms(s, None, 250_000) == ("quadratic", 250_000)
    assert fee_terms(None, None, None) == ("", 1_000_000)


def test_unreadable_series_multiplier_is_an_error_not_a_guess() -> None:
    with pytest.raises(UnitError):
        fee_terms(_series("quadratic", b'"lots"'))


def test_connector_discovery_keeps_event_overrides() -> None:
    from shared.kalshi.discovery import event_info

    ev = msgspec.json.decode(
        b'{"event_ticker":"E","series_ticker":"S","fee_type_override":"flat","fee_multiplier_override":0.25}',
        type=Event,
    )
    info = event_info(ev)
    assert (info.fee_type_override, info.fee_ppm_override) == ("flat", 250_000)
