"""The trade backfill's checkpoint: what a restarted gap filler must know to cover its own
downtime.

While the gap filler is down it sees no trade, no Gap, no disconnect: a connector that loses
trades then would go unnoticed. So it keeps, in one small file, the newest trade time it has
accounted for, the oldest start of a window it has not finished (pending or being fetched),
and the connectors' epochs. A restarted gap filler opens one window for every market from the
older of the two, up to the first live trade it sees (:meth:`TradeLedger.resume`).

Written atomically (temporary file, fsync, rename, fsync of the directory: the journal
cursor's file operations); read totally: a torn or foreign file is ``None``, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from shared.journal_cursor import OS, FileOps

#: Unix milliseconds up to the year 2255: anything else in the file is not ours.
_Ms = Annotated[int, msgspec.Meta(ge=0, le=9_000_000_000_000)]
_MAX_BYTES = 1 << 20


class Checkpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Trades up to here were seen (or were before this process began).
    newest_ms: _Ms
    #: The oldest start of a window not yet fetched and published; None: none open.
    unfinished_ms: _Ms | None
    epochs: dict[str, Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]]

    @property
    def resume_ms(self) -> int:
        """Where a restarted gap filler's window starts (before the overlap)."""
        return self.newest_ms if self.unfinished_ms is None else min(self.newest_ms, self.unfinished_ms)


_decoder = msgspec.json.Decoder(Checkpoint)


def encode(cp: Checkpoint) -> bytes:
    return msgspec.json.encode(cp) + b"\n"


def decode(data: bytes) -> Checkpoint | None:
    """The checkpoint ``data`` holds, or None when it is torn or not a checkpoint."""
    if len(data) > _MAX_BYTES:
        return None
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def write(path: Path, cp: Checkpoint, ops: FileOps = OS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    ops.write_file(tmp, encode(cp))
    ops.replace(tmp, path)
    ops.fsync_dir(path.parent)


def read(path: Path) -> tuple[Checkpoint | None, bool]:
    """(the checkpoint, whether a file was there): (None, False) on a first start, (None, True)
    for a torn file."""
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        return None, False
    except OSError:
        return None, True
    return decode(data), True
