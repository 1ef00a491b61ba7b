"""The packed-delta codec (shared/store/deltapack.py): every int64 a delta may carry comes back
exactly, runs are cut where they must be, and a body that is not one is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.store import deltapack as dp

I64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
DAY = dp.DAY_US


@st.composite
def parts(draw: st.DrawFn) -> list[tuple[object, ...]]:
    """Deltas of one subscription, xseqs strictly rising, values anywhere in int64 (or small)."""
    n = draw(st.integers(min_value=1, max_value=40))
    small = st.integers(min_value=-300, max_value=300)
    value = st.one_of(I64, small)
    first = draw(st.integers(min_value=-(2**62), max_value=2**62))
    steps = draw(st.lists(st.integers(min_value=1, max_value=1000), min_size=n, max_size=n))
    xs, x = [], first
    for s in steps:
        xs.append(x)
        x += s
    recv0 = draw(st.integers(min_value=0, max_value=2**50))
    return [
        (3, 4, xs[i], f"M{draw(st.integers(0, 5))}", draw(st.sampled_from(dp.SIDES)), draw(value),
         draw(value), draw(value), recv0 + draw(st.integers(0, 10**6)))
        for i in range(n)
    ]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(parts())
def test_a_run_decodes_to_exactly_its_deltas(part: list[tuple[object, ...]]) -> None:
    ids = {f"M{i}": i + 1 for i in range(6)}
    names = {v: k for k, v in ids.items()}
    runs = dp.runs_of(part, ids.__getitem__)
    back = [r for run in runs for r in dp.rows_of(run, names.__getitem__)]
    assert back == sorted(part, key=lambda r: r[2])  # type: ignore[arg-type, return-value]
    for run in runs:
        d = dp.decode(run.body)
        assert d.n == run.n and run.first_xseq <= run.last_xseq
        assert run.last_xseq - run.first_xseq <= dp.MAX_SPAN
        # the fast path (columns of one run, market ids' width from the top id) decodes the same
        rows = sorted((r for r in part if run.first_xseq <= r[2] <= run.last_xseq), key=lambda r: r[2])  # type: ignore[operator]
        fast = dp.run_of_columns(list(zip(*rows, strict=True)), ids.__getitem__, None, max(ids.values()))
        assert fast[:-1] == run[:-1] and dp.rows_of(fast, names.__getitem__) == dp.rows_of(
            run, names.__getitem__
        )


def test_runs_are_cut_at_the_day_the_span_and_the_size() -> None:
    ids = {"A": 1}.__getitem__

    def delta(x: int, recv: int) -> tuple[object, ...]:
        return (1, 1, x, "A", "yes", 1, 1, recv, recv)

    day = [delta(1, DAY - 1), delta(2, DAY)]
    assert [(r.first_xseq, r.n) for r in dp.runs_of(day, ids)] == [(1, 1), (2, 1)]
    span = [delta(1, 0), delta(2 + dp.MAX_SPAN, 1)]
    assert [(r.first_xseq, r.n) for r in dp.runs_of(span, ids)] == [(1, 1), (2 + dp.MAX_SPAN, 1)]
    big = [delta(x, x) for x in range(dp.MAX_RUN + 5)]
    assert [r.n for r in dp.runs_of(big, ids)] == [dp.MAX_RUN, 5]
    # arrival order does not matter: a run is in xseq order
    assert [r.first_xseq for r in dp.runs_of([delta(5, 0), delta(3, 0)], ids)] == [3]
    assert dp.one_run(list(zip(*[delta(5, 0), delta(3, 0)], strict=True))) is None
    assert dp.one_run(list(zip(*[delta(3, 0), delta(3, 0)], strict=True))) is None  # a repeat
    assert dp.one_run(list(zip(*[delta(3, 7), delta(4, 9)], strict=True))) == (7, 9)


def test_a_value_past_int64_is_refused_and_a_bad_body_is_not_misread() -> None:
    with pytest.raises(OverflowError):
        dp.runs_of([(1, 1, 1, "A", "no", 2**63, 0, 0, 0)], {"A": 1}.__getitem__)
    (run,) = dp.runs_of([(1, 1, 1, "A", "no", 5, -6, 7, 8)], {"A": 1}.__getitem__)
    for bad in (b"", run.body[:-1], run.body + b"\0", b"\x02" + run.body[1:]):
        with pytest.raises(ValueError):
            dp.decode(bad)
