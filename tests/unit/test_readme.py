"""The README's two commands are the real ones: .ci/run runs the test command verbatim."""

from __future__ import annotations

import re

from tests.support.procs import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.*?)\n```", text, re.S)[:2]


def test_readme_opens_with_run_and_test_commands() -> None:
    run, test = _commands()
    assert "kxfeed up" in run and "venv" in run
    assert "pytest" in test and "venv" in test


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, test = _commands()
    assert test in (ROOT / ".ci" / "run").read_text().splitlines()
