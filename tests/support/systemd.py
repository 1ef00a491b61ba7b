"""`systemd-analyze verify` over kxfeed's units in a directory (the repo's ops/ copy or an
installed layout): every unit kxfeed ships, with nothing of ours complained about."""

from __future__ import annotations

import subprocess
from pathlib import Path

from services import registry


def assert_units_verify(tool: str, units: Path) -> None:
    names = ["kxfeed-bus.service", "kxfeed.service", "kxfeed.target"]
    names += [f"kxfeed-worker@{w}.service" for w in registry.WORKER_MODULES]
    out = subprocess.run(
        [tool, "verify", *(str(units / n) for n in names)],
        cwd=units,
        env={"SYSTEMD_UNIT_PATH": f"{units}:", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "kxfeed" in line]
    assert out.returncode == 0 and not ours, "\n".join(ours) or out.stderr
