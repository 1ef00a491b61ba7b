"""The subscriber example in docs/bus.md works, as written, against a live bus."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import zmq

from shared.bus import Proxy, Publisher
from shared.messages import Trade
from tests.support.config import ipc_endpoint
from tests.support.procs import ROOT


def test_docs_subscriber_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "bus.md").read_text()
    code = re.search(r"## A subscriber in plain pyzmq \+ msgspec\n\n```python\n(.*?)```", text, re.S)
    assert code, "example block not found"
    script = tmp_path / "example.py"
    script.write_text(code.group(1))

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    xsub, xpub = ipc_endpoint(tmp_path, "xsub"), ipc_endpoint(tmp_path, "xpub")
    proxy = Proxy(ctx, xsub, xpub, 10_000)
    proxy.start()
    pub = Publisher(ctx, xsub, "docs")
    proc = subprocess.Popen([sys.executable, str(script), xpub, "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert pub.wait_for_subscriber_sync("trade.X", 15)
        pub.publish_many(
            [
                Trade(
                    trade_id=f"t{i}",
                    ticker="KXNBAGAME-26NOV03LALBOS-LAL",
                    yes_price=4300,
                    no_price=5700,
                    count=2500,
                    taker_side="yes",
                    ts_recv=time.time_ns(),
                )
                for i in range(3)
            ]
        )
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close(0)
        proxy.stop()
        ctx.destroy(0)
    lines = out.strip().splitlines()
    assert proc.returncode == 0
    assert lines == [f"trade.KXNBAGAME-26NOV03LALBOS-LAL #{i}: 25 @ $0.4300 taker yes" for i in (1, 2, 3)]
