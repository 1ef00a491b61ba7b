"""Issue 16's setup mistakes, made for real: how fast, and how, does kxfeed answer each?

  .venv/bin/python bench/mistakes.py

Each mistake runs the real CLI (``kxfeed up`` unless said otherwise) in a scratch directory
and prints: the seconds until the process exited, its exit status, how many lines it wrote
to stderr, whether a traceback was among them, and the first line. The target (issue 16):
every mistake answered in under 5 s with one line on the terminal and a non-zero exit, no
traceback. Exit status 1 when one misses it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.kalshi.auth import generate_private_key, private_pem  # noqa: E402
from tests.support.config import config_file  # noqa: E402
from tests.support.procs import clean_env, kxfeed_cmd  # noqa: E402

LIMIT_S = 5.0


def config(d: Path, **sections: Any) -> str:
    return str(config_file(d, **sections))


def key(d: Path, mode: int) -> str:
    path = d / "kalshi.pem"
    path.write_bytes(private_pem(generate_private_key()))
    os.chmod(path, mode)
    return str(path)


Mistake = Callable[[Path, list[socket.socket]], tuple[list[str], dict[str, str]]]


def demo_without_credentials(d: Path, _: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    return ["up", "--config", config(d, kalshi={"env": "demo"})], clean_env(ODDS_API_KEY="x")


def key_mode_0644(d: Path, _: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    env = clean_env(KALSHI_KEY_ID="id", KALSHI_PRIVATE_KEY_PATH=key(d, 0o644), ODDS_API_KEY="x")
    return ["up", "--config", config(d, kalshi={"env": "demo"})], env


def unreachable_postgresql(d: Path, held: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, not listening: connects are refused, nobody can take it
    held.append(s)
    url = f"postgresql+asyncpg://kx:secret@127.0.0.1:{s.getsockname()[1]}/kx"
    return ["up", "--config", config(d, db={"url": url})], clean_env()


def taken_worker_port(d: Path, held: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    held.append(s)
    return ["up", "--config", config(d, connector={"metrics_port": s.getsockname()[1]})], clean_env()


def simulator_outside_sim(d: Path, _: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    env = clean_env(KALSHI_KEY_ID="id", KALSHI_PRIVATE_KEY_PATH=key(d, 0o600), ODDS_API_KEY="x")
    return ["up", "--config", config(d, kalshi={"env": "demo"}), "--workers", "bus,sim"], env


def bad_env_value(d: Path, _: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    return ["config", "check", "--offline"], clean_env(KXFEED_SIM_RATE="fast")


def restart_unknown_worker(d: Path, _: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    return ["restart", "nosuch", "--config", config(d)], clean_env()


def unknown_strategy(d: Path, _: list[socket.socket]) -> tuple[list[str], dict[str, str]]:
    return ["signals", "--strategy", "nosuch", "--config", config(d)], clean_env()


MISTAKES: dict[str, Mistake] = {
    "env=demo, no credentials": demo_without_credentials,
    "key file mode 0644": key_mode_0644,
    "PostgreSQL unreachable": unreachable_postgresql,
    "a worker's port taken": taken_worker_port,
    "the simulator outside env=sim": simulator_outside_sim,
    "KXFEED_SIM_RATE=fast": bad_env_value,
    "restart nosuch": restart_unknown_worker,
    "signals --strategy nosuch": unknown_strategy,
}


def main() -> int:
    missed = 0
    print(f"{'mistake':32} {'seconds':>7} {'exit':>4} {'lines':>5}  first line")
    for name, make in MISTAKES.items():
        held: list[socket.socket] = []
        with tempfile.TemporaryDirectory() as tmp:
            args, env = make(Path(tmp), held)
            start = time.monotonic()
            res = subprocess.run(
                kxfeed_cmd(*args), cwd=tmp, capture_output=True, text=True, env=env, timeout=120
            )
            seconds = time.monotonic() - start
        for s in held:
            s.close()
        lines = res.stderr.strip().splitlines()
        trace = "Traceback" in res.stderr
        ok = seconds < LIMIT_S and res.returncode != 0 and len(lines) == 1 and not trace
        missed += not ok
        first = (lines[0] if lines else "")[:110]
        print(
            f"{name:32} {seconds:7.2f} {res.returncode:4} {len(lines):5}"
            f"{'  TRACEBACK' if trace else ''}  {first}"
        )
    print(
        f"target: each under {LIMIT_S:.0f} s, one line, non-zero exit, no traceback -> "
        f"{'OK' if not missed else f'{missed} MISSED'}"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
