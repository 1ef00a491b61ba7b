"""A real Actor run as a program whose background loop raises once a trigger file appears.

``python -m tests.integration.loop_crash_child CONFIG TRIGGER``: named "orderbook" (it uses
that config section), ready at once; its ``trigger`` loop deletes TRIGGER and raises.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from shared.actor import Actor
from shared.config import Config, load_config
from shared.log import setup_logging


class LoopCrash(Actor):
    name = "orderbook"

    def __init__(self, config: Config, trigger: Path) -> None:
        super().__init__(config)
        self.trigger = trigger

    async def setup(self) -> None:
        self.ready = True

    async def main(self) -> None:
        self.spawn(self._watch(), name="trigger")
        await self.stopping.wait()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            if self.trigger.exists():
                self.trigger.unlink()
                raise RuntimeError("background loop broke on purpose")


def main(config: str, trigger: str) -> int:
    setup_logging("INFO", json=True)
    return LoopCrash(load_config(config), Path(trigger)).run()


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
