"""tests/support/netns.py itself: hosts reach each other only over the links given, a crash
leaves nothing running on the host, and everything is gone after the block, a failed one too."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import netns
from tests.support.netns import Hosts, hosts
from tests.support.procs import wait_until


def listen(net: Hosts, host: str, addr: str) -> tuple[socket.socket, int]:
    """A listening TCP socket made on ``host`` (it stays in that namespace), and its port."""

    def go() -> socket.socket:
        s = socket.socket()
        s.bind((addr, 0))
        s.listen()
        return s

    s = net.call(host, go)
    return s, s.getsockname()[1]


def reaches(net: Hosts | None, host: str, addr: str, port: int) -> bool:
    def go() -> bool:
        try:
            with socket.create_connection((addr, port), timeout=2):
                return True
        except OSError:
            return False

    return go() if net is None else net.call(host, go)


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


def test_hosts_reach_each_other_only_over_their_links(tmp_path: Path) -> None:
    with hosts(("a", "b", "c"), (("a", "b"),)) as net:
        addr = net.address("a", "b")
        server, port = listen(net, "a", addr)
        try:
            assert reaches(net, "b", addr, port)
            assert not reaches(net, "c", addr, port), "c has no link to a"
            assert not reaches(None, "root", addr, port), "the root namespace has no route into a"
            # Loopback is up and private: a's 127.0.0.1 is not b's.
            lo, lo_port = listen(net, "a", "127.0.0.1")
            try:
                assert reaches(net, "a", "127.0.0.1", lo_port)
                assert not reaches(net, "b", "127.0.0.1", lo_port)
            finally:
                lo.close()
        finally:
            server.close()


def test_a_crash_kills_every_process_on_the_host_and_the_block_leaves_nothing(tmp_path: Path) -> None:
    names: list[str] = []
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="the test failed"), hosts(("a", "b"), (("a", "b"),)) as net:
        names[:] = net.ns.values()
        # A process that double-forks into a session of its own is still on the host.
        net.spawn("a", ["sh", "-c", "setsid sleep 600 & sleep 600"], log=tmp_path / "a.log")
        net.spawn("b", ["sleep", "600"], log=tmp_path / "b.log")
        assert wait_until(lambda: len(net.pids("a")) == 3, 10), net.pids("a")
        killed = net.crash("a")
        assert len(killed) == 3 and net.pids("a") == []
        pids[:] = net.pids("b")
        assert pids
        raise RuntimeError("the test failed")
    listed = namespaces()
    assert not [n for n in names if n in listed], listed
    for pid in pids:  # killed and waited for (reaped), not left running or a zombie
        assert not Path(f"/proc/{pid}").exists(), f"{pid} still there"


def test_without_root_it_skips_unless_namespaces_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("KXFEED_REQUIRE_NETNS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="need root"), hosts(("a",), ()):
        pass
    monkeypatch.setenv("KXFEED_REQUIRE_NETNS", "1")
    with pytest.raises(pytest.fail.Exception, match="KXFEED_REQUIRE_NETNS is set"), hosts(("a",), ()):
        pass
