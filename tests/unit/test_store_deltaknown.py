"""What the writer knows of stored xseqs (shared/store/deltaknown.py): whatever it answers matches
what was stored, in any order of stores, and it answers without the table for the live stream
(interleaved, out of order, holes filled later)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.store import deltaknown
from shared.store.deltaknown import Known

# Batches of distinct xseqs, in any order, near each other or far apart (past the gap bound).
XS = st.one_of(st.integers(-50, 400), st.integers(-(2**40), 2**40))
BATCHES = st.lists(st.lists(XS, min_size=1, max_size=30, unique=True), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(before=st.sets(st.integers(-50, 400), max_size=40), batches=BATCHES)
def test_every_answer_matches_what_is_stored(before: set[int], batches: list[list[int]]) -> None:
    """The table held ``before`` when the mark was read; each batch stores its xseqs not stored
    yet (as the writer does). Every xseq at or below the mark: a True/False answer is exact."""
    stored = set(before)
    top = max(before, default=None)
    known = Known(top)
    for batch in batches:
        new = sorted(x for x in batch if x not in stored)  # a run's xseqs rise
        if not new:
            continue
        known.learn(new, top)
        stored.update(new)
        top = max(stored)
        for x in {*range(-60, 410), *stored}:
            if x > top:
                continue
            got = known.stored(x)
            assert got is None or got == (x in stored), (x, got)
        assert len(known.gaps) <= deltaknown.MAX_GAPS


def test_the_live_stream_is_known_without_the_table() -> None:
    """One subscription's deltas as the connector's market runs bring them: batches cut
    through stretches of interleaved xseqs; each later delta below the mark is known new."""
    xs = sorted(range(1, 10_001), key=lambda x: ((x - 1) // 1000, x % 50))
    known, top, stored = Known(None), None, set()
    for i in range(0, len(xs), 2060):
        batch = sorted(xs[i : i + 2060])
        if top is not None:
            assert all(known.stored(x) is False for x in batch if x <= top)
        known.learn(batch, top)
        stored.update(batch)
        top = max(stored)
    assert all(known.stored(x) is True for x in range(1, 10_001))
    assert not known.gaps


def test_past_the_bound_it_forgets_and_the_table_answers() -> None:
    known = Known(100)
    assert known.stored(50) is None and known.stored(100) is None  # stored before: ask the table
    known.learn([101, 103], 100)
    assert (known.stored(101), known.stored(102), known.stored(103)) == (True, False, True)
    known.learn([104 + deltaknown.MAX_GAPS + 10], 103)  # a jump: more holes than it keeps
    assert known.stored(102) is None and not known.gaps


@settings(max_examples=200, deadline=None)
@given(before=st.sets(st.integers(-50, 400), max_size=40), batches=BATCHES, probe=st.sets(XS, max_size=20))
def test_none_stored_is_every_answer_false(
    before: set[int], batches: list[list[int]], probe: set[int]
) -> None:
    stored = set(before)
    top = max(before, default=None)
    known = Known(top)
    for batch in batches:
        new = sorted(x for x in batch if x not in stored)
        if new:
            known.learn(new, top)
            stored.update(new)
            top = max(stored)
    xs = sorted(x for x in probe if top is not None and x <= top)
    assert known.none_stored(xs) == all(known.stored(x) is False for x in xs)
