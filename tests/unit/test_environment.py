"""Every environment variable the code reads is in shared.environment and in README.md's table."""

from __future__ import annotations

import re

import pytest

from shared.config import NON_CONFIG_ENV
from shared.environment import ENV_VARS
from tests.support.procs import ROOT

#: ``environ.get("X")``, ``os.environ["X"]``, ``os.getenv("X")`` - however the mapping is named.
_READ = re.compile(r"""(?:environ(?:\.get)?|getenv)\s*[\(\[]\s*["']([A-Z][A-Z0-9_]+)["']""")


def _read_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    # The product, the benchmarks and the suite's own set-up (test bodies that set PATH for a
    # child process configure the test, not kxfeed).
    files = [ROOT / "tests" / "conftest.py"]
    for top in ("shared", "services", "bench", "tests/support"):
        files += sorted((ROOT / top).rglob("*.py"))
    for path in files:
        for name in _READ.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def test_the_grep_finds_the_known_reads() -> None:
    found = _read_in_code()
    assert {"KALSHI_KEY_ID", "KALSHI_PRIVATE_KEY_PATH", "KALSHI_ENV", "ODDS_API_KEY", "KXFEED_CONFIG"} <= set(
        found
    )


def test_every_variable_read_is_documented() -> None:
    listed = {v.name for v in ENV_VARS}
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Environment variables") :]
    for name, where in _read_in_code().items():
        assert name in listed, f"{where} reads {name}: add it to shared/environment.py ENV_VARS"
        assert f"| `{name}` |" in table, f"{where} reads {name}: add it to README.md's table"
    for var in ENV_VARS:
        assert f"| `{var.name}` |" in table, f"README.md's table lacks {var.name}"
    for name in NON_CONFIG_ENV:
        assert name in listed, f"{name} is not a config override, so it needs its own row"


def test_no_documented_kxfeed_variable_is_read_as_a_config_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CI sets KXFEED_REQUIRE_BROWSER; once it made every worker refuse its config.
    from shared.config import load_config

    for var in ENV_VARS:
        if var.name.startswith("KXFEED_") and "<" not in var.name and var.name != "KXFEED_CONFIG":
            monkeypatch.setenv(var.name, "1")
    cfg = load_config(None)
    assert cfg.db.url
