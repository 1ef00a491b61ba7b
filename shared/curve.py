"""CURVE for the bus and the control sockets beyond loopback: key files, the loopback rule, and
the socket options of a CURVE server or client.

The rule: a socket bound or connected to a loopback endpoint (127.0.0.0/8, ``::1``,
``localhost``, ``ipc://``, ``inproc://``) is exactly what it always was: no keys, no options, no
authenticator. Any other endpoint (``tcp://0.0.0.0:...``, ``tcp://*:...``, a host's own address, a
remote host, an interface name) is CURVE or nothing: :meth:`Curve.serve` and :meth:`Curve.dial`
raise :class:`~shared.config.ConfigError` naming the ``[curve]`` key that is missing, so a
process refuses to start instead of serving the bus to its network unauthenticated.

Keys are ZeroMQ certificate files (``NAME.key``: the public key; ``NAME.key_secret``: both,
mode 0600), as ``kxfeed keys`` and ``zmq.auth.create_certificates`` write them. ``[curve]`` holds
paths, never keys, and no message here ever carries a secret key: a public key is shown as its
first 8 Z85 characters (:func:`fingerprint`).

Which clients a server admits is the ZAP handler's decision (:mod:`shared.curve_zap`): only the
public keys in ``[curve] allowed_clients``.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import zmq
import zmq.auth
from zmq.utils import z85

from shared.config import Config, ConfigError
from shared.config_common import CurveConfig, WorkerBase
from shared.curve_zap import ZapHandler, fingerprint
from shared.zmq_watch import PeerWatch

__all__ = [
    "Curve",
    "CurveKeyError",
    "Keypair",
    "current",
    "endpoints_of",
    "fingerprint",
    "install",
    "is_loopback",
    "load_public",
    "load_secret",
    "write_keypair",
]

#: Group write or any access for others: a secret key file with one of these bits is refused.
UNSAFE_SECRET_BITS = 0o027
_LOCAL_HOSTS = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class CurveKeyError(ConfigError):
    """A key file that cannot be used; the message names the file and its ``[curve]`` key."""


def is_loopback(endpoint: str) -> bool:
    """True when ``endpoint`` cannot be reached from another host (see the module docstring).

    A ``tcp://`` connect may name a source (``tcp://src;dst:port``): every address in it must be
    loopback. Anything unparsable is not loopback: the safe answer is to ask for keys.
    """
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not rest:
        return False
    return all(_loopback_host(part) for part in rest.split(";"))


def _loopback_host(hostport: str) -> bool:
    if hostport.startswith("["):
        host = hostport[1:].partition("]")[0]
    else:
        host = hostport.rpartition(":")[0] if ":" in hostport else hostport
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name, a DNS name: may face the network
        return False


@dataclass(frozen=True)
class Keypair:
    public: bytes  # Z85, 40 bytes
    secret: bytes  # Z85, 40 bytes

    def __repr__(self) -> str:  # a secret never reaches a log through a repr
        return f"Keypair(public={fingerprint(self.public)}...)"


def _z85_key(value: bytes | None) -> bytes | None:
    """``value`` when it is a Z85 CURVE key (40 characters, 32 bytes), else None."""
    if value is None or len(value) != 40:
        return None
    try:
        return value if len(z85.decode(value)) == 32 else None
    except (ValueError, KeyError, TypeError):
        return None


def _read_certificate(path: Path, what: str) -> tuple[bytes | None, bytes | None]:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CurveKeyError(f"{what}: no such file {path} (generate keys with `kxfeed keys`)") from None
    except OSError as exc:
        raise CurveKeyError(f"{what}: cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CurveKeyError(f"{what}: {path} is not a regular file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except PermissionError:
        raise CurveKeyError(f"{what}: {path} is not readable by this user (uid {os.getuid()})") from None
    except (OSError, ValueError):
        # Never the file's text in the message: it may be a secret key in the wrong format.
        raise CurveKeyError(f"{what}: {path} is not a ZeroMQ certificate (no public-key line)") from None
    return public, secret


def load_public(path: str | os.PathLike[str], what: str) -> bytes:
    """The Z85 public key of a certificate file (``NAME.key`` or ``NAME.key_secret``)."""
    p = Path(path)
    public, _ = _read_certificate(p, what)
    key = _z85_key(public)
    if key is None:
        raise CurveKeyError(f"{what}: {p}: the public-key is not a 40-character Z85 CURVE key")
    return key


def load_secret(path: str | os.PathLike[str], what: str) -> Keypair:
    """The keypair of a ``NAME.key_secret`` file, refused unless it is 0600 (or 0640/0400/0440)
    and its public key is the secret key's."""
    p = Path(path)
    public, secret = _read_certificate(p, what)
    pub, sec = _z85_key(public), _z85_key(secret)
    if sec is None:
        raise CurveKeyError(f"{what}: {p} holds no secret-key (is it the NAME.key_secret file?)")
    mode = p.stat().st_mode
    if mode & UNSAFE_SECRET_BITS:
        raise CurveKeyError(
            f"{what}: {p} has mode {stat.S_IMODE(mode):04o}: a secret key must be 0600 (or 0640 with a "
            f"group only kxfeed is in); fix it with: chmod 600 {p}"
        )
    if pub is None or zmq.curve_public(sec) != pub:
        raise CurveKeyError(f"{what}: {p}: its public-key is not the public key of its secret-key")
    return Keypair(pub, sec)


def load_allowed(directory: str | os.PathLike[str], what: str) -> frozenset[bytes]:
    """The public keys of every ``*.key`` file in ``directory`` (at least one)."""
    d = Path(directory)
    if not d.is_dir():
        raise CurveKeyError(f"{what}: {d} is not a directory (of the clients' NAME.key files)")
    keys = frozenset(load_public(f, what) for f in sorted(d.glob("*.key")))
    if not keys:
        raise CurveKeyError(f"{what}: no *.key files in {d}: copy the clients' NAME.key files there")
    return keys


_SECRET_BANNER = """#   ****  Generated by kxfeed keys  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""
_PUBLIC_BANNER = """#   ****  Generated by kxfeed keys  ****
#   ZeroMQ CURVE Public Certificate
#   Give this file to the servers that admit this key (their [curve] allowed_clients directory)
#   or to the clients that connect to this server ([curve] server_public_key).

"""


def _certificate(banner: str, public: bytes, secret: bytes | None) -> str:
    text = f'{banner}metadata\ncurve\n    public-key = "{public.decode()}"\n'
    if secret is not None:
        text += f'    secret-key = "{secret.decode()}"\n'
    return text


def _write_new(path: Path, text: str, mode: int, force: bool) -> None:
    # Written beside the target and renamed over it: a reader never sees half a key, and the
    # secret is 0600 from its first byte (never a moment world-readable).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if force:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with FileExistsError instead of overwriting
            os.unlink(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_keypair(directory: str | os.PathLike[str], name: str, *, force: bool = False) -> tuple[Path, Path]:
    """Generate a keypair as ``NAME.key`` (public, 0644) and ``NAME.key_secret`` (0600) in
    ``directory``; FileExistsError when either exists and not ``force``."""
    d = Path(directory)
    public_path, secret_path = d / f"{name}.key", d / f"{name}.key_secret"
    if not force:
        for p in (public_path, secret_path):
            if p.exists():
                raise FileExistsError(p)
    public, secret = zmq.curve_keypair()
    _write_new(secret_path, _certificate(_SECRET_BANNER, public, secret), 0o600, force)
    _write_new(public_path, _certificate(_PUBLIC_BANNER, public, None), 0o644, force)
    return public_path, secret_path


def endpoints_of(cfg: Config, worker: str) -> tuple[list[str], list[str]]:
    """(what ``worker`` binds, what it connects to) among the bus and control endpoints: every
    worker binds its control socket and connects to both bus endpoints; the bus binds them, and
    publishes its heartbeats into its own XSUB; the supervisor also calls every control socket."""
    control = cfg.worker(worker).control
    binds = [control] if control else []
    connects = [cfg.bus.xsub, cfg.bus.xpub]
    if worker == "bus":
        binds += [cfg.bus.xsub, cfg.bus.xpub]
        connects = [cfg.bus.xsub]
    if worker == "supervisor":
        for f in msgspec.structs.fields(cfg):
            section = getattr(cfg, f.name)
            if isinstance(section, WorkerBase) and f.name != "supervisor" and section.control:
                connects.append(section.control)
    return binds, connects


class Curve:
    """One process's CURVE keys, read from ``[curve]`` when a non-loopback socket first needs
    them (or at start, by :meth:`require`), and applied to its sockets."""

    def __init__(self, cfg: CurveConfig | None = None) -> None:
        self.cfg = cfg or CurveConfig()
        self._lock = threading.Lock()
        self._server: Keypair | None = None
        self._allowed: frozenset[bytes] | None = None
        self._client: tuple[Keypair, bytes] | None = None
        self._zap: dict[int, ZapHandler] = {}
        self._watches: list[tuple[zmq.Socket[Any], PeerWatch]] = []

    def _need(self, key: str, why: str) -> str:
        value: str = getattr(self.cfg, key)
        if not value:
            raise ConfigError(
                f"[curve] {key} is not set: {why} (generate keys with `kxfeed keys`; loopback and "
                f"ipc:// endpoints need none)"
            )
        return value

    def server_keys(self, endpoint: str) -> tuple[Keypair, frozenset[bytes]]:
        with self._lock:
            if self._server is None or self._allowed is None:
                why = f"binding {endpoint} (not loopback) requires CURVE"
                server = load_secret(self._need("server_key", why), "[curve] server_key")
                allowed = load_allowed(self._need("allowed_clients", why), "[curve] allowed_clients")
                self._server, self._allowed = server, allowed
            return self._server, self._allowed

    def client_keys(self, endpoint: str) -> tuple[Keypair, bytes]:
        with self._lock:
            if self._client is None:
                why = f"connecting to {endpoint} (not loopback) requires CURVE"
                server = load_public(self._need("server_public_key", why), "[curve] server_public_key")
                client = load_secret(self._need("client_key", why), "[curve] client_key")
                self._client = (client, server)
            return self._client

    def require(self, binds: Iterable[str] = (), connects: Iterable[str] = ()) -> None:
        """Load now every key these endpoints need: a ConfigError at start, not at first use."""
        for endpoint in binds:
            if endpoint and not is_loopback(endpoint):
                self.server_keys(endpoint)
        for endpoint in connects:
            if endpoint and not is_loopback(endpoint):
                self.client_keys(endpoint)

    def problems(self, binds: Iterable[str] = (), connects: Iterable[str] = ()) -> list[str]:
        """:meth:`require`'s error as one line, or nothing (for the preflight)."""
        try:
            self.require(binds, connects)
        except ConfigError as exc:
            return [str(exc)]
        return []

    def serve(self, sock: zmq.Socket[Any], endpoint: str, name: str) -> None:
        """Make ``sock`` a CURVE server before it binds ``endpoint`` beyond loopback (nothing for
        loopback). ``name`` is its ZAP domain: the ``socket`` label of the rejections counted."""
        if is_loopback(endpoint):
            return
        keys, allowed = self.server_keys(endpoint)
        with self._lock:
            ctx_id = int(sock.context.underlying)
            handler = self._zap.get(ctx_id)
            if handler is None or not handler.alive():
                handler = self._zap[ctx_id] = ZapHandler(sock.context, allowed)
        sock.setsockopt(zmq.ZAP_DOMAIN, name.encode())
        # Fail closed: without this, a CURVE server whose ZAP handler is gone admits any key.
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)

    def dial(self, sock: zmq.Socket[Any], endpoint: str, name: str = "") -> None:
        """Make ``sock`` a CURVE client of the configured server before it connects to ``endpoint``
        beyond loopback (nothing for loopback). With ``name``, a socket monitor counts what
        happens to its connection (``kxfeed_zmq_peer_events_total{socket=name}``) at each
        :meth:`poll`: a server refusing our key is otherwise silence on this side."""
        if is_loopback(endpoint):
            return
        keys, server = self.client_keys(endpoint)
        sock.setsockopt(zmq.CURVE_SERVERKEY, server)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
        if name:
            with self._lock:
                self._watches.append((sock, PeerWatch(sock, name)))

    def poll(self) -> None:
        """Count (and log once per burst) the events of the client sockets dialled with a name;
        a worker calls it with each heartbeat. Watches of closed sockets are dropped."""
        with self._lock:
            watches = list(self._watches)
        for sock, watch in watches:
            watch.poll()
            if sock.closed:
                watch.close()
                with self._lock:
                    self._watches.remove((sock, watch))

    def close(self) -> None:
        with self._lock:
            handlers, self._zap = list(self._zap.values()), {}
            watches, self._watches = self._watches, []
        for _, watch in watches:
            watch.close()
        for handler in handlers:
            handler.stop()


_current = Curve()


def install(curve: Curve) -> Curve:
    """Make ``curve`` what this process's sockets use when none is passed (a worker at start, the
    CLI after loading its config); returns it."""
    global _current
    _current = curve
    return curve


def current() -> Curve:
    """The process's :class:`Curve` (keyless until :func:`install`: non-loopback is refused)."""
    return _current
