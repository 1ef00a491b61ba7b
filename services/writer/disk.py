"""Disk use of the data and journal directories (blocking file-system walks: run in a thread).

The writer exports them (``kxfeed_data_dir_bytes``, ``kxfeed_data_dir_free_bytes``,
``kxfeed_data_dir_size_bytes``, each with ``dir="data"|"journal"``): the database, the
journals and the logs live there, and ``ops/prometheus/alerts.yml`` warns before they fill
the disk. Bytes are allocated blocks, what a full disk is made of (a sparse file counts for
what it uses).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class DiskUse(NamedTuple):
    used: int  # bytes allocated to files under the directory
    free: int  # bytes an unprivileged writer can still use on its file system
    size: int  # bytes of that file system


def tree_bytes(root: Path) -> int:
    """Allocated bytes under ``root``; files that vanish during the walk are skipped."""
    total = 0
    todo = [root]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def disk_use(root: Path) -> DiskUse | None:
    """None when the directory does not exist (yet)."""
    try:
        st = os.statvfs(root)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return DiskUse(tree_bytes(root), st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
