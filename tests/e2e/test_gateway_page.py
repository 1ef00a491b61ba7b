"""The gateway's web page in a real browser: headless Chromium (Debian's ``chromium``, driven over
the DevTools protocol by tests/support/cdp.py) opens ``/`` of a running ``kxfeed up`` with the
simulator, sees the board fill with markets from the live stream, sees one market's top of book
change on the board, clicks that market and sees its ladder with levels, sees a gap the
simulator made in the gaps panel, and saves a screenshot in the test's tmp dir.

Skipped only when no Chromium is installed AND ``KXFEED_REQUIRE_BROWSER`` is unset (.ci/run
installs Chromium and sets it)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import System
from tests.support.cdp import Chromium, Page, find_chromium
from tests.support.config import reported_port

PRICE = r"^\d+\.\d{4}$"  # the API's exact decimal strings, shown as written
COUNT = r"^\d+\.\d{2}$"

#: Every board row: ticker -> [bid text, ask text].
BOARD = """(() => {
  const out = {};
  for (const r of document.querySelectorAll('#board-body .brow')) {
    out[r.dataset.ticker] = [r.children[1].textContent, r.children[2].textContent];
  }
  return out;
})()"""


def _changed(before: dict[str, list[str]]) -> str:
    """A JS expression: the first ticker whose board top differs from ``before`` and is priced."""
    return f"""(() => {{
  const before = {json.dumps(before)};
  const re = /{PRICE}/;
  for (const r of document.querySelectorAll('#board-body .brow')) {{
    const t = r.dataset.ticker, was = before[t];
    const now = [r.children[1].textContent, r.children[2].textContent];
    if (was && (now[0] !== was[0] || now[1] !== was[1]) && re.test(now[0]) && re.test(now[1])) return t;
  }}
  return null;
}})()"""


LADDER = f"""(() => {{
  const rows = [...document.querySelectorAll('#ladder tbody tr.bid, #ladder tbody tr.ask')];
  const price = /{PRICE}/, count = /{COUNT}/;
  return {{
    ticker: document.getElementById('ladder-ticker').textContent,
    levels: rows.length,
    well_formed: rows.every(r => price.test(r.cells[1].textContent)
      && count.test(r.classList.contains('bid') ? r.cells[0].textContent : r.cells[2].textContent)),
    meta: document.getElementById('ladder-meta').textContent,
  }};
}})()"""

GAPS = "[...document.querySelectorAll('#gaps tbody tr')].map(r => r.textContent)"
GAPS = f"{GAPS}.length ? {GAPS} : null"
HEALTH = "[...document.querySelectorAll('#health .pill')].map(e => e.textContent)"


def _browser() -> str:
    binary = find_chromium()
    if binary is None:
        if os.environ.get("KXFEED_REQUIRE_BROWSER"):
            pytest.fail("a Chromium is required (KXFEED_REQUIRE_BROWSER is set) but none is installed")
        pytest.skip("no chromium installed (apt-get install chromium)")
    return binary


async def _drive(browser: Chromium, url: str, shot: Path) -> dict[str, Any]:
    page = await Page.open(browser.start(), width=browser.size[0], height=browser.size[1])
    try:
        await page.navigate(url)
        priced = await page.poll(
            f"Object.values({BOARD}).filter(v => /{PRICE}/.test(v[0]) && /{PRICE}/.test(v[1])).length", 60
        )
        conn = await page.evaluate("document.getElementById('conn').textContent")
        board = await page.evaluate(BOARD)
        assert priced, f"no market with a two-sided top on the board ({conn}): {board}\n{page.console}"
        assert conn == "live", f"the stream is not live: {conn!r}"
        before = await page.evaluate(BOARD)
        ticker = await page.poll(_changed(before), 60)
        assert ticker, f"no top of book changed on the board: {before}\n{page.console}"

        await page.click(f"#board-body .brow[data-ticker={json.dumps(ticker)}]")
        t = json.dumps(ticker)
        shown = f"(() => {{ const l = {LADDER}; return l.ticker === {t} && l.levels ? l : null; }})()"
        ladder = await page.poll(shown, 30)
        assert ladder, f"{ticker}'s ladder shows no levels: {await page.evaluate(LADDER)}\n{page.console}"
        selected = await page.evaluate("document.querySelector('#board-body .brow.sel')?.dataset.ticker")
        health = await page.poll(f"{HEALTH}.length ? {HEALTH} : null", 30)
        # The simulator withholds a sequence number now and then: the connector's gap (and its
        # recovery) reaches the page's gaps panel through the stream.
        gaps = await page.poll(GAPS, 120)
        await page.screenshot(shot)
        return {
            "ticker": ticker,
            "ladder": ladder,
            "selected": selected,
            "health": health,
            "gaps": gaps,
            "console": list(page.console),
        }
    finally:
        await page.close()


@pytest.mark.slow
def test_the_page_shows_a_live_board_and_a_market_ladder(tmp_path: Path) -> None:
    binary = _browser()
    system = System(tmp_path / "system", sim={"rate": 100.0, "markets": 20, "faults": "gap:0.003"})
    try:
        system.start()
        port = reported_port(system.cfg, "gateway", "http")
        with Chromium(binary, tmp_path) as browser:
            seen = asyncio.run(_drive(browser, f"http://127.0.0.1:{port}/", tmp_path / "page.png"))
        assert system.stop() == 0, system.log_tail()
    finally:
        system.kill()

    assert seen["selected"] == seen["ticker"], seen
    assert seen["ladder"]["well_formed"], seen["ladder"]
    assert "gateway" in seen["health"], seen["health"]
    assert seen["gaps"], "no gap reached the page"
    errors = [line for line in seen["console"] if line.startswith(("exception", "console.error"))]
    assert not errors, errors
    png = (tmp_path / "page.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000, len(png)
