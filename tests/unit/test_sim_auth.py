"""Kalshi request signing (shared/kalshi/auth.py) and the simulator's key ring."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from services.exchange_sim.keyring import KeyRing, trusted_keys
from shared.kalshi import auth

KEY = auth.generate_private_key()


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def test_signature_is_rsa_pss_sha256_over_timestamp_method_path() -> None:
    sig = auth.sign(KEY, 1703123456789, "GET", "/trade-api/v2/portfolio/balance")
    raw = base64.b64decode(sig, validate=True)
    # Verify independently of the module: PSS, MGF1-SHA256, salt = digest length.
    KEY.public_key().verify(
        raw,
        b"1703123456789GET/trade-api/v2/portfolio/balance",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert auth.verify(KEY.public_key(), sig, 1703123456789, "GET", "/trade-api/v2/portfolio/balance")
    # The query string is not signed; anything else is.
    assert auth.verify(KEY.public_key(), sig, 1703123456789, "GET", "/trade-api/v2/portfolio/balance?limit=5")
    assert not auth.verify(KEY.public_key(), sig, 1703123456788, "GET", "/trade-api/v2/portfolio/balance")
    assert not auth.verify(KEY.public_key(), sig, 1703123456789, "POST", "/trade-api/v2/portfolio/balance")
    assert not auth.verify(KEY.public_key(), "not base64!", 1703123456789, "GET", "/x")


def test_auth_headers() -> None:
    h = auth.auth_headers("key-1", KEY, "GET", "/trade-api/ws/v2", 1700000000123)
    assert set(h) == {"KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE"}
    assert h["KALSHI-ACCESS-TIMESTAMP"] == "1700000000123"
    assert auth.verify(
        KEY.public_key(), h["KALSHI-ACCESS-SIGNATURE"], 1700000000123, "GET", "/trade-api/ws/v2"
    )


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_loads_pkcs1_and_pkcs8(tmp_path: Path, fmt: serialization.PrivateFormat) -> None:
    pem = KEY.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    assert pem.startswith(
        b"-----BEGIN RSA PRIVATE KEY"
        if fmt is serialization.PrivateFormat.TraditionalOpenSSL
        else b"-----BEGIN PRIVATE KEY"
    )
    key = auth.load_private_key(_write(tmp_path / "k.pem", pem))
    assert key.private_numbers() == KEY.private_numbers()


def test_refuses_keys_others_can_read_and_says_how_to_fix(tmp_path: Path) -> None:
    pem = auth.private_pem(KEY)
    path = _write(tmp_path / "k.pem", pem, 0o644)
    with pytest.raises(auth.KeyFileError) as exc:
        auth.load_private_key(path)
    assert f"chmod 600 {path}" in str(exc.value)
    assert "PRIVATE KEY" not in str(exc.value)


def test_errors_carry_no_key_material(tmp_path: Path) -> None:
    with pytest.raises(auth.KeyFileError, match="not found"):
        auth.load_private_key(tmp_path / "missing.pem")
    secret = b"-----BEGIN PRIVATE KEY-----\nTOPSECRETBYTES\n-----END PRIVATE KEY-----\n"
    with pytest.raises(auth.KeyFileError) as exc:
        auth.load_private_key(_write(tmp_path / "bad.pem", secret))
    assert "TOPSECRET" not in str(exc.value) and exc.value.__cause__ is None
    encrypted = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(auth.KeyFileError, match="encrypted"):
        auth.load_private_key(_write(tmp_path / "enc.pem", encrypted))
    with pytest.raises(auth.KeyFileError):
        auth.load_public_key(b"nonsense")


def _make_dev_key(data_dir: str, q: multiprocessing.Queue[bytes]) -> None:
    q.put(auth.ensure_dev_keypair(data_dir)[1])


def test_dev_keypair_is_created_once_private_and_race_safe(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q: multiprocessing.Queue[bytes] = ctx.Queue()
    procs = [ctx.Process(target=_make_dev_key, args=(str(tmp_path), q)) for _ in range(4)]
    for p in procs:
        p.start()
    pems = {q.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(60)
    assert len(pems) == 1  # every racer ended up with the same key
    path, pem = auth.ensure_dev_keypair(tmp_path)
    assert {pem} == pems and path == tmp_path / "sim-dev-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (tmp_path / "sim-dev-key.pub.pem").read_bytes() == pem
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    key = auth.load_private_key(path)
    assert auth.public_pem(key) == pem


def test_key_ring_checks_key_freshness_and_signature(tmp_path: Path) -> None:
    ring = KeyRing({"k": KEY.public_key()}, max_skew_s=30)
    now = 1_800_000_000_000
    good = auth.auth_headers("k", KEY, "GET", "/trade-api/ws/v2", now)
    assert ring.check(good, "GET", "/trade-api/ws/v2", now + 1000) is None
    assert ring.check({}, "GET", "/trade-api/ws/v2", now) == "missing_headers"
    assert ring.check({**good, "KALSHI-ACCESS-KEY": "other"}, "GET", "/trade-api/ws/v2", now) == "unknown_key"
    assert ring.check(good, "GET", "/trade-api/ws/v2", now + 31_000) == "stale_timestamp"
    assert ring.check(good, "GET", "/trade-api/v2/markets", now) == "bad_signature"
    assert (
        ring.check({**good, "KALSHI-ACCESS-TIMESTAMP": "soon"}, "GET", "/trade-api/ws/v2", now)
        == "bad_timestamp"
    )
    # Extra trusted keys come from KEY_ID=PATH entries next to the dev key.
    pub = tmp_path / "extra.pub.pem"
    pub.write_bytes(auth.public_pem(KEY))
    keys = trusted_keys(str(tmp_path), [f"extra={pub}"])
    assert set(keys) == {auth.SIM_DEV_KEY_ID, "extra"}
    with pytest.raises(auth.KeyFileError):
        trusted_keys(str(tmp_path), ["no-equals-sign"])
