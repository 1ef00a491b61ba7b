"""Exit notes: each child is told (``$KXFEED_EXIT_NOTE``) where to leave its last word.

A worker that exits ``EX_CONFIG`` writes its one-line message there (shared.actor does), so
the supervisor can show the cause in the terminal without reading the child's log.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from shared.config import EXIT_NOTE_ENV

#: The most of a note read (one line is all it should be).
NOTE_MAX = 2000


class ExitNotes:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.dir = Path(tempfile.mkdtemp(prefix="kxfeed-exit-notes-"))

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.exit"

    def env_for(self, name: str) -> dict[str, str]:
        """The environment entry for a child about to start (and no note left from before)."""
        path = self._path(name)
        path.unlink(missing_ok=True)
        return {EXIT_NOTE_ENV: str(path)}

    def read(self, name: str) -> str:
        """The child's note as one line, or "" when it left none."""
        try:
            with open(self._path(name), encoding="utf-8", errors="replace") as fh:
                text = fh.read(NOTE_MAX)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            self.log.warning(
                "cannot read the exit note", extra={"ctx": {"worker": name, "error": exc.strerror}}
            )
            return ""
        return " ".join(text.split())

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
