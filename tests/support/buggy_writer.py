"""The real writer process with a bug injected into its row building (tests only).

``python -m tests.support.buggy_writer MARKER AFTER_SEQ [kxfeed worker args...]``: until
the file MARKER exists, the first batch holding a book delta of seq >= AFTER_SEQ gets one
row of the wrong shape, as a broken mapper would build it; the database refuses the
statement, which is a bug, not an outage. The process that hits it creates MARKER first,
so the writer the supervisor restarts runs clean and must replay what was not committed.
Nothing here is reachable from production code: the patch is applied by this launcher.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from services.cli.main import main as kxfeed
from services.writer import rows
from shared.messages import BookDelta, Message


def inject(marker: Path, after_seq: int) -> None:
    original = rows.BatchBuilder.add_run

    def add_run(self: rows.BatchBuilder, msgs: list[Message]) -> None:
        original(self, msgs)
        if type(msgs[0]) is BookDelta and msgs[-1].seq >= after_seq and not marker.exists():
            marker.write_text(f"{os.getpid()}\n")
            self.rows["book_deltas"].append(("not", "a", "row"))

    rows.BatchBuilder.add_run = add_run  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    marker, after_seq, *rest = argv
    inject(Path(marker), int(after_seq))
    return kxfeed(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
