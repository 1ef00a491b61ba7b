"""The shell's side: CountSync exports what a core's Counts gained, once, under the metric's
own name and label; a new session's Counts starts from zero."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from services.connector.counts import NAMES, Counts
from services.connector.metrics import COUNTERS, CountSync, FastHistogram


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_sync_adds_only_what_grew_and_a_new_counts_starts_from_zero() -> None:
    dups = value("kxfeed_ws_duplicates_total")
    gaps = value("kxfeed_ws_gaps_total", reason="seq_gap")
    sync = CountSync()
    first = Counts()
    first.add("duplicates", n=2)
    first.add("gaps", "seq_gap")
    sync.sync(first)
    sync.sync(first)  # nothing new: nothing added
    first.add("duplicates")
    sync.sync(first)
    assert value("kxfeed_ws_duplicates_total") - dups == 3
    assert value("kxfeed_ws_gaps_total", reason="seq_gap") - gaps == 1
    second = Counts()  # the next connection's session
    second.add("duplicates")
    sync.sync(second)
    assert value("kxfeed_ws_duplicates_total") - dups == 4


def test_every_core_counter_has_its_prometheus_counter() -> None:
    assert set(COUNTERS) == NAMES
    for name, metric in COUNTERS.items():
        assert metric._name == f"kxfeed_ws_{name}" or name == "reanchored"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(-100, 100_000), st.sampled_from([-1, 0, 1, 2, 5, 6, 60_000, 60_001]))))
def test_a_batch_of_ages_lands_in_the_buckets_one_at_a_time_would(ages: list[int]) -> None:
    # Not registered: a private collector per example, compared with its twin.
    one, many = FastHistogram("one", "x"), FastHistogram("many", "x")
    for v in ages:
        one.observe_ms(v)
    many.observe_many_ms(list(ages))
    assert many.counts == one.counts and many.sum_ms == one.sum_ms
