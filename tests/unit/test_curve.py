"""CURVE: the loopback rule, key files, what a config without the keys it needs is told, the ZAP
decision."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest
import zmq
from zmq.utils import z85

from shared.actor import Actor
from shared.config import ConfigError, CurveConfig, load_config
from shared.curve import (
    Curve,
    CurveKeyError,
    endpoints_of,
    is_loopback,
    load_public,
    load_secret,
    write_keypair,
)
from shared.curve_zap import decide
from shared.preflight import check_curve
from tests.support.config import make_config


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:5555",
        "tcp://127.9.8.7:1",
        "tcp://localhost:5555",
        "tcp://[::1]:5555",
        "tcp://127.0.0.1:*",
        "tcp://127.0.0.1:0;127.0.0.1:5555",
        "ipc:///tmp/kx/xsub",
        "inproc://kx",
    ],
)
def test_loopback_endpoints(endpoint: str) -> None:
    assert is_loopback(endpoint)


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://0.0.0.0:5555",
        "tcp://*:5555",
        "tcp://[::]:5555",
        "tcp://10.1.2.3:5555",
        "tcp://eth0:5555",
        "tcp://kx-bus.internal:5555",
        "tcp://10.0.0.5;127.0.0.1:5555",
        "tcp://127.0.0.1;10.0.0.5:5555",
        "ws://127.0.0.1:5555",
        "pgm://eth0;239.192.1.1:5555",
        "garbage",
        "tcp://",
    ],
)
def test_endpoints_that_may_face_the_network(endpoint: str) -> None:
    assert not is_loopback(endpoint)


def test_keypair_files_load_back_and_are_not_overwritten(tmp_path: Path) -> None:
    public_path, secret_path = write_keypair(tmp_path, "server")
    assert (public_path.name, secret_path.name) == ("server.key", "server.key_secret")
    assert os.stat(secret_path).st_mode & 0o777 == 0o600
    assert os.stat(public_path).st_mode & 0o077 == 0o044  # public: readable by anyone
    pair = load_secret(secret_path, "[curve] server_key")
    assert load_public(public_path, "k") == pair.public
    assert zmq.curve_public(pair.secret) == pair.public and len(z85.decode(pair.secret)) == 32
    assert pair.secret.decode() not in public_path.read_text()
    assert pair.secret.decode() not in repr(pair)
    # zmq.auth reads them as its own certificates
    assert zmq.auth.load_certificate(secret_path) == (pair.public, pair.secret)
    with pytest.raises(FileExistsError):
        write_keypair(tmp_path, "server")
    assert load_secret(secret_path, "k") == pair
    write_keypair(tmp_path, "server", force=True)
    assert load_secret(secret_path, "k") != pair
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key", "server.key_secret"]


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    _, secret_path = write_keypair(tmp_path, "c")
    secret_path.chmod(0o644)
    with pytest.raises(CurveKeyError, match=r"\[curve\] client_key: .* mode 0644.*chmod 600") as err:
        load_secret(secret_path, "[curve] client_key")
    assert load_secret.__name__ and "secret-key" not in str(err.value)


def test_bad_key_files_are_named_and_never_echoed(tmp_path: Path) -> None:
    public_path, secret_path = write_keypair(tmp_path, "c")
    secret = secret_path.read_text()
    with pytest.raises(CurveKeyError, match="holds no secret-key"):
        load_secret(public_path, "[curve] client_key")
    # a public key that does not belong to the secret key
    other, _ = write_keypair(tmp_path, "d")
    mixed = tmp_path / "mixed.key_secret"
    mixed.write_text(secret.replace(load_public(public_path, "k").decode(), load_public(other, "k").decode()))
    mixed.chmod(0o600)
    with pytest.raises(CurveKeyError, match="not the public key of its secret-key") as err:
        load_secret(mixed, "[curve] client_key")
    assert secret not in str(err.value)
    garbage = tmp_path / "garbage.key"
    garbage.write_text("hunter2-not-a-key\n")
    with pytest.raises(CurveKeyError, match="not a ZeroMQ certificate") as err:
        load_public(garbage, "[curve] server_public_key")
    assert "hunter2" not in str(err.value)
    with pytest.raises(CurveKeyError, match=r"\[curve\] server_public_key: no such file .*kxfeed keys"):
        load_public(tmp_path / "missing.key", "[curve] server_public_key")


def test_loopback_needs_no_keys_and_reads_no_files() -> None:
    curve = Curve(CurveConfig(server_key="/nonexistent/s", client_key="/nonexistent/c"))
    curve.require(["tcp://127.0.0.1:5555", "ipc:///tmp/x"], ["tcp://localhost:5556", "inproc://y"])
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.SUB)
        curve.serve(sock, "tcp://127.0.0.1:5555", "bus_xsub")
        curve.dial(sock, "ipc:///tmp/x")
        assert sock.getsockopt(zmq.MECHANISM) == zmq.NULL
        sock.close(0)
    finally:
        ctx.destroy(0)


def test_missing_keys_name_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[curve\] server_key is not set: binding tcp://0.0.0.0:5555"):
        Curve().require(binds=["tcp://0.0.0.0:5555"])
    with pytest.raises(ConfigError, match=r"\[curve\] server_public_key is not set: connecting to tcp://10"):
        Curve().require(connects=["tcp://10.0.0.1:5555"])
    _, secret = write_keypair(tmp_path, "server")
    with pytest.raises(ConfigError, match=r"\[curve\] allowed_clients is not set"):
        Curve(CurveConfig(server_key=str(secret))).require(binds=["tcp://*:5555"])
    empty = tmp_path / "clients"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"\[curve\] allowed_clients: no \*.key files in"):
        Curve(CurveConfig(server_key=str(secret), allowed_clients=str(empty))).require(binds=["tcp://*:1"])
    with pytest.raises(ConfigError, match=r"\[curve\] client_key is not set"):
        Curve(CurveConfig(server_public_key=str(tmp_path / "server.key"))).require(connects=["tcp://h:1"])
    # and at the socket, for a path that skipped require()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = ctx.socket(zmq.XSUB)
        with pytest.raises(ConfigError, match=r"\[curve\] server_key"):
            Curve().serve(sock, "tcp://0.0.0.0:0", "bus_xsub")
        sock.close(0)
    finally:
        ctx.destroy(0)


def test_curve_keys_come_from_config_and_environment(tmp_path: Path) -> None:
    f = tmp_path / "kx.toml"
    f.write_text('[curve]\nserver_key = "/etc/kx/server.key_secret"\nallowed_clients = "/etc/kx/clients"\n')
    cfg = load_config(f, environ={"KXFEED_CURVE_CLIENT_KEY": "/etc/kx/me.key_secret"})
    assert cfg.curve == CurveConfig(
        server_key="/etc/kx/server.key_secret",
        allowed_clients="/etc/kx/clients",
        client_key="/etc/kx/me.key_secret",
    )
    f.write_text('[curve]\nsecret_key = "x"\n')
    with pytest.raises(ConfigError, match="secret_key"):
        load_config(f, environ={})


def test_what_each_worker_binds_and_connects(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, bus={"xsub": "tcp://0.0.0.0:5555", "xpub": "tcp://0.0.0.0:5556"})
    binds, connects = endpoints_of(cfg, "bus")
    assert binds == [cfg.busproxy.control, "tcp://0.0.0.0:5555", "tcp://0.0.0.0:5556"]
    assert connects == ["tcp://0.0.0.0:5555"]  # its heartbeats; it subscribes to nothing
    both = ["tcp://0.0.0.0:5555", "tcp://0.0.0.0:5556"]
    assert endpoints_of(cfg, "writer") == ([cfg.writer.control], both)
    binds, connects = endpoints_of(cfg, "supervisor")
    assert binds == [cfg.supervisor.control]
    assert connects[:2] == both and {cfg.writer.control, cfg.busproxy.control} <= set(connects[2:])


def test_preflight_names_the_missing_key_per_role(tmp_path: Path) -> None:
    loop = make_config(tmp_path)
    assert check_curve(loop, ["bus", "writer"], supervisor=True) == []
    remote_bus = make_config(tmp_path, bus={"xsub": "tcp://10.0.0.1:5555", "xpub": "tcp://10.0.0.1:5556"})
    problems = check_curve(remote_bus, ["writer", "orderbook"])
    assert len(problems) == 1 and problems[0].startswith("[curve] server_public_key is not set")
    control = make_config(tmp_path, writer={"control": "tcp://0.0.0.0:7001", "metrics_port": 0})
    assert check_curve(control, ["orderbook"]) == []
    assert check_curve(control, ["writer"])[0].startswith(
        "[curve] server_key is not set: binding tcp://0.0.0.0"
    )


def _zap(mechanism: bytes, *creds: bytes) -> list[bytes]:
    return [b"1.0", b"7", b"bus_xpub", b"10.0.0.9", b"", mechanism, *creds]


def test_zap_admits_only_allowed_keys() -> None:
    ok_pub, _ = zmq.curve_keypair()
    other_pub, _ = zmq.curve_keypair()
    allowed = frozenset({ok_pub})
    reply, reason, domain, peer = decide(_zap(b"CURVE", z85.decode(ok_pub)), allowed)
    assert (reply[1:3], reason, domain, peer) == ([b"7", b"200"], "", "bus_xpub", "10.0.0.9")
    reply, reason, _, _ = decide(_zap(b"CURVE", z85.decode(other_pub)), allowed)
    assert (reply[2], reason) == (b"400", "unknown_key")
    assert decide(_zap(b"NULL"), allowed)[1] == "mechanism"
    assert decide(_zap(b"PLAIN", b"user", b"pass"), allowed)[1] == "mechanism"
    assert decide(_zap(b"CURVE", b"short"), allowed)[1] == "mechanism"
    assert decide([b"1.0"], allowed)[1] == "malformed"
    assert decide([], allowed)[0][2] == b"500"


def test_curve_config_is_paths_only() -> None:
    # Every [curve] key is a path (a str): no field could carry a key inline by mistake.
    assert all(f.type is str for f in msgspec.structs.fields(CurveConfig))


def test_an_actor_without_the_keys_it_needs_does_not_construct(tmp_path: Path) -> None:
    class Writer(Actor):
        name = "writer"

    cfg = make_config(tmp_path, writer={"control": "tcp://0.0.0.0:0", "metrics_port": 0})
    with pytest.raises(ConfigError, match=r"\[curve\] server_key is not set: binding tcp://0.0.0.0:0"):
        Writer(cfg)
    remote = make_config(tmp_path, bus={"xsub": "tcp://10.9.9.9:5555", "xpub": "tcp://10.9.9.9:5556"})
    with pytest.raises(ConfigError, match=r"\[curve\] server_public_key is not set"):
        Writer(remote)
