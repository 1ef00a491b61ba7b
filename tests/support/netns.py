"""Hosts on this machine: Linux network namespaces joined by veth pairs, for tests that need
traffic to cross a real network between processes (``ip netns``; root only).

Each host is a namespace of its own, named per run (``kx<uuid fragment>-<host>``) so parallel
runs never share one, with ``lo`` up. Each link is a veth pair created straight inside its two
namespaces, so neither its interface names nor its addresses ever exist in the root namespace:
link ``i`` is ``10.213.<i>.1/24`` on its first host and ``.2`` on its second, and since every
namespace has its own addresses and routes, two runs using the same numbers cannot collide.
A host reaches only the hosts it has a link to. Files (and so ``ipc://`` sockets and the
PostgreSQL unix socket) are shared by every namespace, as on one machine's disk.

Skipped (``pytest.skip`` with the reason) when this is not root or ``ip netns`` does not work,
unless ``KXFEED_REQUIRE_NETNS`` is set (``.ci/run`` sets it): then it fails instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

from tests.support.procs import ROOT, kxfeed_cmd, wait_until

T = TypeVar("T")

_CLONE_NEWNET = 0x40000000  # <linux/sched.h>; os.setns is Python 3.12+, this runs on 3.11


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def netns_problem() -> str:
    """Why namespaces cannot be made here ("" when they can): tried, not guessed."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which("ip") is None:
        return "no ip command (iproute2)"
    probe = f"kxprobe{uuid.uuid4().hex[:8]}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe)
    return ""


def require_netns() -> None:
    why = netns_problem()
    if not why:
        return
    if os.environ.get("KXFEED_REQUIRE_NETNS"):
        pytest.fail(f"network namespaces are required (KXFEED_REQUIRE_NETNS is set): {why}")
    pytest.skip(why)


class Hosts:
    """Namespaces ``names`` with veth ``links`` between pairs of them; :meth:`close` kills every
    process left in them and deletes them (the veths go with them)."""

    def __init__(self, names: Sequence[str], links: Sequence[tuple[str, str]]) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.ns = {name: f"kx{self.run_id}-{name}" for name in names}
        self._addr: dict[tuple[str, str], str] = {}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._made: list[str] = []
        self._etc: list[Path] = []
        try:
            for name in names:
                self._check(_ip("netns", "add", self.ns[name]))
                self._made.append(self.ns[name])
                self._check(_ip("-n", self.ns[name], "link", "set", "lo", "up"))
            for i, (a, b) in enumerate(links):
                self._link(i, a, b)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _check(done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(done.args)}: {done.stderr.strip()}")

    def _link(self, i: int, a: str, b: str) -> None:
        ends = ((a, b, f"v{i}a", 1), (b, a, f"v{i}b", 2))
        self._check(
            _ip("link", "add", f"v{i}a", "netns", self.ns[a], "type", "veth",
                "peer", "name", f"v{i}b", "netns", self.ns[b])
        )  # fmt: skip
        for host, peer, dev, octet in ends:
            addr = f"10.213.{i}.{octet}"
            self._check(_ip("-n", self.ns[host], "addr", "add", f"{addr}/24", "dev", dev))
            self._check(_ip("-n", self.ns[host], "link", "set", dev, "up"))
            self._addr[(host, peer)] = addr

    def address(self, host: str, peer: str) -> str:
        """``host``'s address on its link to ``peer`` (what ``peer`` connects to)."""
        return self._addr[(host, peer)]

    def resolve(self, host: str, names: Mapping[str, str]) -> None:
        """Host names -> addresses as seen from ``host``: its own ``/etc/hosts``, which ``ip netns
        exec`` mounts over the shared one for what it runs there (:meth:`call` does not see it)."""
        etc = Path("/etc/netns") / self.ns[host]
        etc.mkdir(parents=True, exist_ok=True)
        self._etc.append(etc)
        lines = ["127.0.0.1 localhost", *(f"{addr} {name}" for name, addr in names.items())]
        (etc / "hosts").write_text("\n".join(lines) + "\n")

    def command(self, host: str, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run on ``host`` (``ip netns exec`` execs it: the child's pid is the command's)."""
        return ["ip", "netns", "exec", self.ns[host], *cmd]

    def spawn(self, host: str, cmd: Sequence[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
        """Start ``cmd`` on ``host``, stdout and stderr into ``log`` (appended: a restart's
        output follows the first run's)."""
        out: IO[bytes] = open(log, "ab")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                self.command(host, cmd), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, **kw,
            )  # fmt: skip
        finally:
            out.close()
        self._procs.append(proc)
        return proc

    def kxfeed(self, host: str, *args: str, log: Path, **kw: Any) -> subprocess.Popen[bytes]:
        return self.spawn(host, kxfeed_cmd(*args), log, **kw)

    def run(self, host: str, cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(host, cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout
        )

    def pids(self, host: str) -> list[int]:
        """Every process on ``host`` now (a worker in a session of its own included)."""
        done = _ip("netns", "pids", self.ns[host])
        return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []

    def crash(self, host: str, timeout: float = 30.0) -> list[int]:
        """SIGKILL every process on ``host`` at once, as if it lost power, and wait until none
        is left; returns the pids killed."""
        killed: list[int] = []

        def gone() -> bool:
            # Again each turn: a supervisor killed mid-spawn may have forked a child meanwhile.
            left = self.pids(host)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if pid not in killed:
                    killed.append(pid)
            self._reap()
            return not left

        assert wait_until(gone, timeout, interval=0.1), f"{host}: still running {self.pids(host)}"
        return killed

    def _reap(self) -> None:
        """Our own children that died are waited for (a zombie still counts as on the host)."""
        for p in self._procs:
            p.poll()

    def call(self, host: str, fn: Callable[[], T]) -> T:
        """``fn()`` in a thread that has joined ``host``'s namespace (what this test process
        itself connects to from there, e.g. the simulator's REST): only that thread moves."""
        box: list[T] = []
        err: list[BaseException] = []

        def body() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{self.ns[host]}", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.ns[host]}")
                finally:
                    os.close(fd)
                box.append(fn())
            except BaseException as exc:  # re-raised in the caller's thread
                err.append(exc)

        t = threading.Thread(target=body, name=f"netns-{host}")
        t.start()
        t.join()
        if err:
            raise err[0]
        return box[0]

    def close(self) -> None:
        for ns in self._made:
            host = next(h for h, n in self.ns.items() if n == ns)
            with contextlib.suppress(AssertionError):
                self.crash(host)
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        for ns in self._made:
            _ip("netns", "del", ns)
        self._made = []
        for etc in self._etc:
            shutil.rmtree(etc, ignore_errors=True)
        self._etc = []


@contextlib.contextmanager
def hosts(names: Sequence[str], links: Sequence[tuple[str, str]]) -> Iterator[Hosts]:
    """:class:`Hosts` for one test (skipped or failed first, see :func:`require_netns`)."""
    require_netns()
    made = Hosts(names, links)
    try:
        yield made
    finally:
        made.close()
