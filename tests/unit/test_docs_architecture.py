"""docs/architecture.md walks one delta through the code: every file it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"


def named_paths() -> list[str]:
    return re.findall(r"`((?:services|shared|tests)/[\w/]+\.py)`", DOC.read_text())


def test_the_walk_names_files_that_exist() -> None:
    paths = named_paths()
    assert len(paths) >= 25, "the walk names the files it passes through"
    missing = [p for p in paths if not (ROOT / p).is_file()]
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"


def test_each_leg_visits_a_module_once() -> None:
    legs = re.split(r"^## Leg ", DOC.read_text(), flags=re.M)[1:]
    assert len(legs) == 4
    for leg in legs:
        steps = re.findall(r"^\d+\. `([\w/]+\.py)`", leg, flags=re.M)
        assert steps, leg.splitlines()[0]
        assert len(steps) == len(set(steps)), f"leg {leg.splitlines()[0]} revisits a module"
