"""One name for one thing: no two modules under ``shared/`` and ``services/`` define a class
with the same name.

A reader who meets ``Session`` or ``Catalog`` should not have to look at the import to know
which of several it is; each class name says what it holds (``SeriesCatalog`` of Kalshi
series facts, ``SportsCatalog`` of the arb detector's markets, ``SimSession`` of one simulator
client). Control commands are named after their wire tag (``Book``, ``Stats``, ...): the class
that shares a word with a command takes the longer name.

Run as a script (``python tests/unit/test_class_names.py``) it lists every repeated name and
the modules that define it.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("shared", "services")

#: Names that may be defined in several modules, each with the reason. Empty: none is needed
#: today; add one only for a name that is truly generic (and say why).
ALLOWED: dict[str, str] = {}


def class_modules(root: Path = ROOT) -> dict[str, list[str]]:
    """Class name -> the modules (paths relative to ``root``) that define it, at any depth."""
    defs: dict[str, set[str]] = defaultdict(set)
    for tree in TREES:
        for path in sorted((root / tree).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ClassDef):
                    defs[node.name].add(path.relative_to(root).as_posix())
    return {name: sorted(mods) for name, mods in defs.items()}


def repeated(root: Path = ROOT) -> dict[str, list[str]]:
    return {name: mods for name, mods in sorted(class_modules(root).items()) if len(mods) > 1}


def test_no_two_modules_define_a_class_of_the_same_name() -> None:
    dups = {name: mods for name, mods in repeated().items() if name not in ALLOWED}
    assert dups == {}, f"class names defined in more than one module (rename to say what each holds): {dups}"


def test_the_check_sees_a_repeated_name(tmp_path: Path) -> None:
    for rel in ("shared/a.py", "services/x/b.py", "services/x/c.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "shared/a.py").write_text("class Catalog:\n    pass\n")
    (tmp_path / "services/x/b.py").write_text("def f():\n    class Catalog:\n        pass\n")
    (tmp_path / "services/x/c.py").write_text("class Other:\n    pass\n")
    assert repeated(tmp_path) == {"Catalog": ["services/x/b.py", "shared/a.py"]}


def test_every_allowed_name_is_still_repeated() -> None:
    stale = [name for name in ALLOWED if name not in repeated()]
    assert stale == [], f"allow-listed names no longer repeated (drop them): {stale}"


if __name__ == "__main__":
    for name, mods in repeated().items():
        print(f"{name}: {', '.join(mods)}")
