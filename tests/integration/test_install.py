"""A plain install works: the wheel carries its package data (default configs, team tables,
the migrations), and installed outside the checkout - into a fresh venv, offline - it runs
`kxfeed up` with every worker; the systemd units verify against that installed layout."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from services import registry
from tests.support.config import make_config, write_config
from tests.support.procs import ROOT, wait_until
from tests.support.systemd import assert_units_verify

SYSTEMD = ROOT / "ops" / "systemd"
#: What the wheel must carry besides the Python modules.
PACKAGE_DATA = [
    "shared/defaults/default.toml",
    "shared/defaults/demo.toml",
    "shared/defaults/prod.toml",
    *(f"shared/defaults/teams/{p.name}" for p in sorted((ROOT / "config" / "teams").glob("*.toml"))),
    "shared/store/migrations/script.py.mako",
    "shared/store/migrations/versions/0001_initial.py",
    *(f"services/gateway/static/{p.name}" for p in sorted((ROOT / "services/gateway/static").iterdir())),
]


def _build_wheel(out: Path) -> Path:
    # Offline and fast: no build isolation (the backend is in this venv: the dev extras).
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    (wheel,) = out.glob("kxfeed-*.whl")
    return wheel


def _fresh_venv(prefix: Path, wheel: Path) -> Path:
    """A venv at ``prefix`` with the wheel installed, offline. Its dependencies come from this
    suite's venv through a .pth line added AFTER the install (so pip does not take this venv's
    editable kxfeed for an installed one); a .pth path does not run that directory's own .pth
    files, so the editable finder stays out and ``import shared`` finds the wheel's copy."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True, timeout=120)
    python = prefix / "bin" / "python"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "kxfeed-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return prefix / "bin" / "kxfeed"


def _json(kxfeed: Path, *args: str, cwd: Path) -> dict[str, object] | None:
    res = subprocess.run([str(kxfeed), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None


@pytest.mark.slow
def test_wheel_installs_and_runs_every_worker(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in PACKAGE_DATA if p not in names]
    assert not missing, f"the wheel lacks {missing}"

    prefix = tmp_path / "opt" / "kxfeed" / ".venv"
    kxfeed = _fresh_venv(prefix, wheel)
    run_dir = tmp_path / "run"  # outside the checkout: nothing importable from a cwd
    run_dir.mkdir()
    where = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import shared.config as c; print(c.__file__, c.CONFIG_DIR)"],
        cwd=run_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(p.startswith(str(prefix)) for p in where), where  # the wheel's copy, not the checkout

    cfg = make_config(run_dir, sim={"port": 0, "rate": 50.0, "markets": 20})
    path = write_config(cfg, run_dir / "kx.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KXFEED_", "KALSHI_"))}
    check = subprocess.run(
        [str(kxfeed), "check", "--config", str(path)],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr

    log = open(run_dir / "up.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [str(kxfeed), "up", "--config", str(path), "--log-json"],
        cwd=run_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    expected = set(registry.default_workers("sim"))

    def states() -> dict[str, str]:
        status = _json(kxfeed, "status", "--json", "--config", str(path), cwd=run_dir)
        return {w["worker"]: w["state"] for w in status["workers"]} if status else {}  # type: ignore[index, union-attr]

    try:
        assert wait_until(lambda: states() == dict.fromkeys(expected, "running"), 120), (
            states(),
            (run_dir / "up.log").read_text()[-4000:],
        )
        # 20 s of the whole pipeline from the installed package: every worker stays up, none restarts.
        until = time.monotonic() + 20.0
        while time.monotonic() < until:
            assert proc.poll() is None, (run_dir / "up.log").read_text()[-4000:]
            time.sleep(1.0)
        status = _json(kxfeed, "status", "--json", "--config", str(path), cwd=run_dir)
        assert status is not None
        workers = {w["worker"]: w for w in status["workers"]}  # type: ignore[index, union-attr]
        assert {n: w["state"] for n, w in workers.items()} == dict.fromkeys(expected, "running")
        assert all(w["restarts"] == 0 for w in workers.values()), workers
        stop = subprocess.run(
            [str(kxfeed), "stop", "--config", str(path)],
            cwd=run_dir,
            capture_output=True,
            text=True,
            timeout=150,
        )
        assert stop.returncode == 0, stop.stderr
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    # The systemd units against this installed layout (/opt/kxfeed -> this prefix's parent).
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    units = tmp_path / "units"
    shutil.copytree(SYSTEMD, units)
    for unit in [*units.glob("*.service"), *units.glob("*.target")]:
        unit.write_text(unit.read_text().replace("/opt/kxfeed", str(prefix.parent)))
    assert_units_verify(tool, units)
