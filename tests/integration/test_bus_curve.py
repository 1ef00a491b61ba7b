"""The bus and control sockets beyond loopback: CURVE over real sockets and real processes.

Servers bind ``tcp://0.0.0.0`` port 0 (the kernel's pick, read back) and clients connect to the
machine's own non-loopback address, as a second host would.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from prometheus_client import REGISTRY

from shared.bus import Proxy, Publisher, Subscriber
from shared.config import EX_CONFIG, CurveConfig
from shared.curve import Curve, write_keypair
from shared.messages import Heartbeat
from shared.zmq_watch import PeerWatch
from tests.support.config import config_file, make_config, reported_port
from tests.support.hostile import raw_garbage
from tests.support.procs import ROOT, clean_env, kxfeed_cmd, run_clean, stop, wait_until


def own_address() -> str:
    """This machine's address on its default route (no packet is sent); 0.0.0.0 without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            addr = str(s.getsockname()[0])
        except OSError:
            return "0.0.0.0"
    return "0.0.0.0" if addr.startswith("127.") else addr


@dataclass
class Keys:
    dir: Path
    server: CurveConfig  # what a host that binds beyond loopback configures
    client: CurveConfig  # a client whose key is allowed
    stranger: CurveConfig  # a client with keys the server does not know

    def secrets(self) -> list[str]:
        """Every secret key written, as it appears in its file."""
        out = []
        for f in self.dir.glob("*.key_secret"):
            for line in f.read_text().splitlines():
                if "secret-key" in line:
                    out.append(line.split('"')[1])
        return out


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    d = tmp_path / "curve"
    (d / "clients").mkdir(parents=True)
    # The allowed client's files from `kxfeed keys` itself (the others in-process: each CLI run
    # costs a second or two on a loaded machine).
    done = run_clean("keys", "--out", str(d), "--name", "client")
    assert done.returncode == 0, done.stderr
    assert "client.key_secret" in done.stdout and "[curve]" in done.stdout
    write_keypair(d, "server")
    write_keypair(d, "stranger")
    (d / "clients" / "client.key").write_bytes((d / "client.key").read_bytes())
    k = Keys(
        d,
        server=CurveConfig(server_key=str(d / "server.key_secret"), allowed_clients=str(d / "clients")),
        client=CurveConfig(server_public_key=str(d / "server.key"), client_key=str(d / "client.key_secret")),
        stranger=CurveConfig(
            server_public_key=str(d / "server.key"), client_key=str(d / "stranger.key_secret")
        ),
    )
    for secret in k.secrets():
        # `kxfeed keys` printed the paths and the config lines, never a secret
        assert secret not in (d / "server.key").read_text()
    return k


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _hb(n: int) -> Heartbeat:
    return Heartbeat(worker="curve-test", pid=n, uptime_ms=n, ready=True, counters={}, ts_recv=n)


@dataclass
class CurveBus:
    ctx: zmq.Context[zmq.Socket[bytes]]
    proxy: Proxy
    xsub: str  # as a client on another host dials them
    xpub: str
    watches: list[PeerWatch]
    server: Curve

    def refused(self, event: str) -> int:
        for w in self.watches:
            w.poll()
        return sum(w.counts.get(event, 0) for w in self.watches)


@contextmanager
def curve_bus(keys: Keys) -> Iterator[CurveBus]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    server = Curve(keys.server)
    proxy = Proxy(ctx, "tcp://0.0.0.0:0", "tcp://0.0.0.0:0", hwm=10_000, curve=server)
    front, back = proxy.sockets()
    watches = [PeerWatch(front, "bus_xsub"), PeerWatch(back, "bus_xpub")]
    host = own_address()
    xsub, xpub = (
        f"tcp://{host}:{s.getsockopt_string(zmq.LAST_ENDPOINT).rpartition(':')[2]}" for s in (front, back)
    )
    proxy.start()
    try:
        yield CurveBus(ctx, proxy, xsub, xpub, watches, server)
    finally:
        proxy.stop()
        for w in watches:
            w.close()
        server.close()
        ctx.destroy(0)


def _delivered(pub: Publisher, sub: Subscriber, n: int = 3) -> list[Heartbeat]:
    """Publish until ``sub`` has ``n`` heartbeats (a subscription reaches the proxy on its own
    time); what it got."""
    got: list[Heartbeat] = []

    def arrived() -> bool:
        pub.publish(_hb(len(got)))
        got.extend(m for m in sub.recv_blocking(0.05) if isinstance(m, Heartbeat))
        return len(got) >= n

    assert wait_until(arrived, 20), "a keyed subscriber got nothing through the CURVE bus"
    return got


def test_keyed_clients_talk_and_others_get_nothing(keys: Keys, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client, stranger = Curve(keys.client), Curve(keys.stranger)
    before = _sample("kxfeed_curve_rejected_total", socket="bus_xpub", reason="unknown_key")
    with curve_bus(keys) as bus:
        pub = Publisher(bus.ctx, bus.xsub, "curve-test", curve=client)
        sub = Subscriber(bus.ctx, bus.xpub, ["hb."], curve=client)
        wrong = Subscriber(bus.ctx, bus.xpub, ["hb."], curve=stranger)
        plain = bus.ctx.socket(zmq.SUB)  # no keys at all: the NULL mechanism
        plain.setsockopt(zmq.SUBSCRIBE, b"")
        plain.connect(bus.xpub)
        assert pub.wait_for_subscriber_sync("hb.curve-test", 20)
        # both strangers refused: the wrong key by ZAP (counted), no key by the handshake itself
        assert wait_until(
            lambda: (
                _sample("kxfeed_curve_rejected_total", socket="bus_xpub", reason="unknown_key") > before
                and bus.refused("handshake_failed_protocol") >= 1
            ),
            20,
        )
        # and the refused client counts it on its own side too (its socket's monitor)
        client_side = {"socket": "bus_xpub_client", "event": "handshake_failed_auth"}
        seen = _sample("kxfeed_zmq_peer_events_total", **client_side)
        assert wait_until(
            lambda: stranger.poll() or _sample("kxfeed_zmq_peer_events_total", **client_side) > seen, 20
        )
        assert _delivered(pub, sub)
        assert wrong.recv_blocking(0.2) == []
        assert plain.poll(200) == 0
        for s in (pub, sub, wrong):
            s.close()
        plain.close(0)
    refusals = [r for r in caplog.records if r.getMessage() == "CURVE handshake refused"]
    assert len(refusals) == 1, "one log line per refused peer"
    ctx = refusals[0].__dict__["ctx"]
    assert ctx["socket"] == "bus_xpub" and ctx["reason"] == "unknown_key" and ctx["peer"]
    logged = caplog.text + "".join(str(r.__dict__.get("ctx", "")) for r in caplog.records)
    assert all(secret not in logged for secret in keys.secrets())


def test_garbage_on_the_curve_ports_does_not_kill_the_bus(keys: Keys) -> None:
    client = Curve(keys.client)
    with curve_bus(keys) as bus:
        for endpoint in (bus.xsub, bus.xpub):
            raw_garbage(endpoint.replace("0.0.0.0", "127.0.0.1"), n=8)
        assert wait_until(
            lambda: bus.refused("handshake_failed_protocol") + bus.refused("handshake_failed_no_detail") >= 4,
            20,
        )
        assert bus.proxy.alive()
        pub = Publisher(bus.ctx, bus.xsub, "curve-test", curve=client)
        sub = Subscriber(bus.ctx, bus.xpub, ["hb."], curve=client)
        assert _delivered(pub, sub)
        pub.close()
        sub.close()


def test_without_its_zap_handler_a_server_refuses_every_key(keys: Keys) -> None:
    client = Curve(keys.client)
    with curve_bus(keys) as bus:
        pub = Publisher(bus.ctx, bus.xsub, "curve-test", curve=client)
        sub = Subscriber(bus.ctx, bus.xpub, ["hb."], curve=client)
        assert _delivered(pub, sub)
        bus.server.close()  # the ZAP handler stops; the bound sockets stay
        late = Subscriber(bus.ctx, bus.xpub, ["hb."], curve=client)
        # (no ZAP to ask: libzmq fails the handshake before any reply, as "no_detail")
        failed = ("handshake_failed_auth", "handshake_failed_no_detail", "handshake_failed_protocol")
        assert wait_until(lambda: sum(bus.refused(e) for e in failed) >= 1, 20), bus.watches[1].counts
        pub.publish(_hb(99))
        assert late.recv_blocking(0.2) == []
        for s in (pub, sub, late):
            s.close()


def test_keys_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    def keys(*extra: str) -> subprocess.CompletedProcess[str]:
        return run_clean("keys", "--out", str(tmp_path), "--name", "host-1", *extra)

    first = keys()
    assert first.returncode == 0, first.stderr
    secret_file = tmp_path / "host-1.key_secret"
    before = secret_file.read_bytes()
    again = keys()
    assert again.returncode == 1 and "host-1.key exists: not overwritten (--force" in again.stderr
    assert secret_file.read_bytes() == before
    forced = keys("--force")
    assert forced.returncode == 0 and secret_file.read_bytes() != before
    for done, text in ((first, before.decode()), (forced, secret_file.read_text())):
        secret = next(line for line in text.splitlines() if "secret-key" in line).split('"')[1]
        assert secret not in done.stdout + done.stderr
        assert f'client_key = "{secret_file.resolve()}"' in done.stdout
    bad = run_clean("keys", "--out", str(tmp_path), "--name", "../escape")
    assert bad.returncode == 2 and "not a key name" in bad.stderr


def _run_worker(cfg_path: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_clean("worker", "bus", "--config", str(cfg_path), timeout=timeout, **env)


def test_a_worker_bound_beyond_loopback_without_keys_refuses_to_start(tmp_path: Path, keys: Keys) -> None:
    cfg = config_file(tmp_path, bus={"xsub": "tcp://0.0.0.0:0", "xpub": "tcp://0.0.0.0:0"})
    done = _run_worker(cfg, {})
    assert done.returncode == EX_CONFIG, done.stderr
    assert "[curve] server_key is not set: binding tcp://0.0.0.0:0" in done.stderr
    # a key given, but not its partner, and a secret file others can read: named, never shown
    leaky = tmp_path / "leaky.key_secret"
    leaky.write_bytes((keys.dir / "server.key_secret").read_bytes())
    leaky.chmod(0o644)
    for env, named in (
        (
            {
                "KXFEED_CURVE_SERVER_KEY": str(leaky),
                "KXFEED_CURVE_ALLOWED_CLIENTS": keys.server.allowed_clients,
            },
            "mode 0644",
        ),
        ({"KXFEED_CURVE_SERVER_KEY": keys.server.server_key}, "[curve] allowed_clients is not set"),
    ):
        done = _run_worker(cfg, env)
        assert done.returncode == EX_CONFIG and named in done.stderr, done.stderr
        assert all(secret not in done.stdout + done.stderr for secret in keys.secrets())


def test_the_bus_worker_serves_keyed_clients_across_the_network(tmp_path: Path, keys: Keys) -> None:
    bus = {"xsub": "tcp://0.0.0.0:0", "xpub": "tcp://0.0.0.0:0"}
    cfg = make_config(tmp_path, bus=bus)
    env = {
        "KXFEED_CURVE_SERVER_KEY": keys.server.server_key,
        "KXFEED_CURVE_ALLOWED_CLIENTS": keys.server.allowed_clients,
        # the bus's own heartbeats dial its XSUB beyond loopback: it is a client too
        "KXFEED_CURVE_SERVER_PUBLIC_KEY": keys.client.server_public_key,
        "KXFEED_CURVE_CLIENT_KEY": keys.client.client_key,
    }
    proc = subprocess.Popen(
        kxfeed_cmd("worker", "bus", "--config", str(config_file(tmp_path, bus=bus))),
        cwd=ROOT,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        host = own_address()
        xsub = f"tcp://{host}:{reported_port(cfg, 'bus', 'xsub')}"
        xpub = f"tcp://{host}:{reported_port(cfg, 'bus', 'xpub')}"
        client = Curve(keys.client)
        pub = Publisher(ctx, xsub, "curve-test", curve=client)
        sub = Subscriber(ctx, xpub, ["hb."], curve=client)
        wrong = Subscriber(ctx, xpub, ["hb."], curve=Curve(keys.stranger))
        assert _delivered(pub, sub)
        assert wrong.recv_blocking(0.2) == []
        metrics = reported_port(cfg, "bus", "metrics")
        line = 'kxfeed_curve_rejected_total{reason="unknown_key",socket="bus_xpub"}'
        assert wait_until(lambda: line in _metrics(metrics), 20), _metrics(metrics)
        for sock in (pub, sub, wrong):
            sock.close()
    finally:
        ctx.destroy(0)
        code = stop(proc)
        out = proc.stdout.read() if proc.stdout else ""
    assert code == 0, out
    assert out.count("CURVE handshake refused") == 1
    assert all(secret not in out for secret in keys.secrets())


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _ctl(
    cfg: Path, endpoint: str, curve: CurveConfig | None, timeout: str = "5"
) -> subprocess.CompletedProcess[str]:
    env = {"KXFEED_BUSPROXY_CONTROL": endpoint}
    if curve is not None:
        env |= {
            "KXFEED_CURVE_SERVER_PUBLIC_KEY": curve.server_public_key,
            "KXFEED_CURVE_CLIENT_KEY": curve.client_key,
        }
    return run_clean("ctl", "bus", "ping", "--config", str(cfg), "--timeout", timeout, **env)


def test_control_socket_beyond_loopback_answers_keyed_callers_only(tmp_path: Path, keys: Keys) -> None:
    # The bus on ipc:// (loopback: keyless, as always), its control socket on the network.
    cfg = make_config(tmp_path, busproxy={"control": "tcp://0.0.0.0:0", "metrics_port": 0})
    path = config_file(tmp_path, busproxy={"control": "tcp://0.0.0.0:0", "metrics_port": 0})
    env = {
        "KXFEED_CURVE_SERVER_KEY": keys.server.server_key,
        "KXFEED_CURVE_ALLOWED_CLIENTS": keys.server.allowed_clients,
    }
    proc = subprocess.Popen(
        kxfeed_cmd("worker", "bus", "--config", str(path)),
        cwd=ROOT,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        endpoint = f"tcp://{own_address()}:{reported_port(cfg, 'bus', 'control')}"
        metrics = reported_port(cfg, "bus", "metrics")
        ok = _ctl(path, endpoint, keys.client)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["worker"] == "bus"
        # no keys: the CLI will not send in the clear, and names what is missing
        keyless = _ctl(path, endpoint, None)
        assert keyless.returncode == 1 and "[curve] server_public_key is not set" in keyless.stderr
        # a raw unkeyed REQ is never answered; a stranger's key is refused and counted
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            req = ctx.socket(zmq.REQ)
            req.connect(endpoint)
            req.send(b'{"cmd": "ping"}')
            assert req.poll(1000) == 0
        finally:
            ctx.destroy(0)
        wrong = _ctl(path, endpoint, keys.stranger, timeout="1")
        assert wrong.returncode == 1 and "no answer" in wrong.stderr
        # The stranger by ZAP; the keyless REQ by the handshake (a NULL greeting to a CURVE
        # server ends as "protocol" or "no_detail" depending on who closes first).
        counted = (
            r'kxfeed_curve_rejected_total\{reason="unknown_key",socket="control"\} 1\.0',
            r'kxfeed_zmq_peer_events_total\{event="handshake_failed_(protocol|no_detail)",socket="control"\}',
        )
        assert wait_until(lambda: all(re.search(c, _metrics(metrics)) for c in counted), 20), _metrics(
            metrics
        )
    finally:
        code = stop(proc)
        out = proc.stdout.read() if proc.stdout else ""
    assert code == 0, out
    assert out.count("CURVE handshake refused") == 1
    assert all(secret not in out for secret in keys.secrets())
