"""Property: any JSON value in any field of any frame type goes decode -> parse -> bus encode
without raising, and every frame is counted (decoded by type, bad by reason, or unknown)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.frames import Mutator, Pipeline, load_corpus

CORPUS = load_corpus()
_SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))

decimals = st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{0,30})?", fullmatch=True)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**17, 10**29, 2**70])
    | st.floats()
    | st.text(max_size=20)
    | decimals
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def counted(pipe: Pipeline) -> int:
    """Frames the pipeline's sessions counted: decoded (by type), bad (by reason) or unknown."""
    c = pipe.counts
    return c.total("messages") + c.total("bad_frames") + c.total("unknown_types")


def replace_at(frame: Any, path: list[int], value: Any) -> Any:
    """``frame`` with the node chosen by ``path`` (indices into keys/items, level by level)
    replaced by ``value``; the walk stops where the path or the containers end."""
    if not path or not isinstance(frame, dict | list) or not frame:
        return value
    keys = list(frame) if isinstance(frame, dict) else list(range(len(frame)))
    k = keys[path[0] % len(keys)]
    out: Any = dict(frame) if isinstance(frame, dict) else list(frame)
    out[k] = replace_at(frame[k], path[1:], value)
    return out


def feed_one(raw: bytes) -> None:
    pipe = Pipeline(CORPUS)
    before = counted(pipe)
    pipe.feed([raw])  # raises only on a bug: that is the property
    assert counted(pipe) - before >= 1, f"a frame went uncounted: {raw[:200]!r}"


@_SETTINGS
@given(
    index=st.integers(min_value=0, max_value=len(CORPUS) - 1),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4),
    value=json_values,
)
def test_any_json_value_in_any_field_of_any_frame_type(index: int, path: list[int], value: Any) -> None:
    pipe = Pipeline(CORPUS)
    frame = replace_at(pipe.placed(CORPUS[index]), path, value)
    raw = json.dumps(frame).encode()  # json, not msgspec: it writes ints of any size
    before = counted(pipe)
    pipe.feed([raw])
    assert counted(pipe) - before >= 1, f"a frame went uncounted: {raw[:200]!r}"


@_SETTINGS
@given(
    index=st.integers(min_value=0, max_value=len(CORPUS) - 1),
    field=st.text(max_size=12),
    value=json_values,
)
def test_any_extra_field_on_any_frame_type(index: int, field: str, value: Any) -> None:
    frame = {**CORPUS[index], field: value}
    feed_one(json.dumps(frame).encode())


@_SETTINGS
@given(raw=st.binary(max_size=300))
def test_any_bytes(raw: bytes) -> None:
    feed_one(raw)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_a_stream_of_mutated_frames_on_one_session(seed: int) -> None:
    """Hostile frames in sequence on one live session (state carried from frame to frame)."""
    pipe = Pipeline(CORPUS)
    gen = Mutator(pipe, seed)
    for _ in range(20):
        pipe.feed([gen.frame() for _ in range(25)])
