"""The connector against the simulator under both conventions for the seq of an ``ok`` to
update_subscription (protocol reference, section 0: unconfirmed whether it takes a number).

Injected gaps are recovered in band (get_snapshot) one after another, never by a
resubscribe after the resync timeout, and the books end equal to the exchange's truth.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.messages import Gap

from .test_connector_support import metric, stack

#: Issue 15 item 5: 100 injected gaps, exactly 100 recoveries (an ok taking a number used to make
#: every get_snapshot read as a new one-frame gap, for as long as the connector ran).
GAPS = 100


@pytest.mark.parametrize("ok_consumes_seq", [False, True], ids=["ok-repeats-seq", "ok-takes-seq"])
def test_gaps_recover_in_band_under_either_ok_convention(tmp_path: Path, ok_consumes_seq: bool) -> None:
    async def body() -> None:
        async with stack(tmp_path, sim={"ok_consumes_seq": ok_consumes_seq}) as st:
            await asyncio.sleep(0.3)
            sid = st.book_sid()

            def recovered_count() -> int:
                return sum(g.status == "recovered" for g in st.tap.of(Gap))

            resubs = metric("kxfeed_ws_resubscribes_total", reason="resync_timeout")
            for n in range(1, GAPS + 1):
                st.sim.faults.inject("gap", sid=sid, count=2)
                await st.until(lambda: recovered_count() >= n, 10.0, f"gap recovery {n}")  # noqa: B023
            await st.settle()
            gaps = st.tap.of(Gap)
            recovered = [g for g in gaps if g.status == "recovered"]
            # Exactly one gap opened per injection: none read from the connector's own recovery.
            assert len([g for g in gaps if g.status == "open"]) == GAPS
            assert len(recovered) == GAPS and {g.method for g in recovered} == {"get_snapshot"}
            assert metric("kxfeed_ws_resubscribes_total", reason="resync_timeout") == resubs
            assert st.book_sid() == sid  # never resubscribed
            st.assert_books_match_truth()

    asyncio.run(body())
