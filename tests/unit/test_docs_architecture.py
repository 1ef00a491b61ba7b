"""docs/architecture.md walks one delta through the code: every file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


PATH = r"`((?:services|shared|tests)/[\w/]+\.py)`"


def named_paths() -> list[str]:
    return re.findall(PATH, DOC.read_text())


def test_the_walk_names_files_that_exist() -> None:
    paths = named_paths()
    assert len(paths) >= 25, "the walk names the files it passes through"
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"


def twice_in_a_leg(text: str) -> dict[str, list[str]]:
    """Leg title -> the modules it names more than once (in a step head or in its text)."""
    out: dict[str, list[str]] = {}
    for leg in re.split(r"^## Leg ", text, flags=re.M)[1:]:
        named = re.findall(PATH, leg)
        again = sorted({p for p in named if named.count(p) > 1})
        if again:
            out[leg.splitlines()[0]] = again
    return out


def test_each_leg_visits_a_module_once() -> None:
    text = DOC.read_text()
    legs = re.split(r"^## Leg ", text, flags=re.M)[1:]
    assert len(legs) == 4
    for leg in legs:
        steps = re.findall(r"^\d+\. `([\w/]+\.py)`", leg, flags=re.M)
        assert steps, leg.splitlines()[0]
    assert twice_in_a_leg(text) == {}, "a leg of the walk names a module twice"


def test_a_module_named_twice_in_one_leg_is_caught() -> None:
    text = (
        "## Leg 1: a\n\n1. `shared/bus.py` x\n2. `shared/journal.py` back to `shared/bus.py`\n"
        "## Leg 2: b\n\n3. `shared/bus.py` once in this leg\n"
    )
    assert twice_in_a_leg(text) == {"1: a": ["shared/bus.py"]}
