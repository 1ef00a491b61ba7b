"""Which key the connector signs with, and refusals that say how to fix them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from shared.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SIM_DEV_KEY_ID,
    KeyFileError,
    generate_private_key,
    verify,
)
from shared.kalshi.credentials import CredentialsError, load_credentials
from tests.support.config import make_config

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"


def write_key(path: Path, mode: int, pkcs1: bool = False):  # type: ignore[no-untyped-def]
    key = generate_private_key()
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if pkcs1 else serialization.PrivateFormat.PKCS8
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    os.chmod(path, mode)
    return key


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_path = tmp_path / "kalshi.pem"
    write_key(key_path, 0o644)
    env = {"KALSHI_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(key_path)}
    with pytest.raises(KeyFileError) as err:
        load_credentials(make_config(tmp_path), "prod", env)
    msg = str(err.value)
    assert f"chmod 600 {key_path}" in msg and "644" in msg
    assert "PRIVATE KEY" not in msg and KEY_ID not in msg


def test_environment_key_signs_every_call_afresh(tmp_path: Path) -> None:
    key_path = tmp_path / "kalshi.pem"
    key = write_key(key_path, 0o600, pkcs1=True)  # PKCS#1 ("BEGIN RSA PRIVATE KEY") is accepted
    creds = load_credentials(
        make_config(tmp_path), "demo", {"KALSHI_KEY_ID": KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(key_path)}
    )
    assert creds.source == "environment"
    h1 = creds.headers("GET", "/trade-api/ws/v2", 1_700_000_000_000)
    h2 = creds.headers("GET", "/trade-api/ws/v2", 1_700_000_000_500)
    assert h1[HEADER_KEY] == KEY_ID and h1[HEADER_TIMESTAMP] == "1700000000000"
    assert h1[HEADER_SIGNATURE] != h2[HEADER_SIGNATURE]
    assert verify(key.public_key(), h1[HEADER_SIGNATURE], 1_700_000_000_000, "GET", "/trade-api/ws/v2")
    assert not verify(key.public_key(), h1[HEADER_SIGNATURE], 1_700_000_000_500, "GET", "/trade-api/ws/v2")
    assert len(base64.b64decode(h1[HEADER_SIGNATURE])) == 256
    assert KEY_ID not in repr(creds)


def test_config_key_path_is_used_when_env_path_is_absent(tmp_path: Path) -> None:
    key_path = tmp_path / "k.pem"
    write_key(key_path, 0o600)
    cfg = make_config(tmp_path, kalshi={"private_key_path": str(key_path)})
    assert load_credentials(cfg, "prod", {"KALSHI_KEY_ID": KEY_ID}).source == "environment"


def test_sim_uses_the_dev_key_by_default(tmp_path: Path) -> None:
    creds = load_credentials(make_config(tmp_path), "sim", {})
    assert creds.source == "sim-dev-key"
    assert creds.headers("GET", "/x", 1)[HEADER_KEY] == SIM_DEV_KEY_ID
    dev = tmp_path / "sim-dev-key.pem"
    assert dev.exists() and dev.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("env", ["demo", "prod"])
def test_real_environments_need_a_key(tmp_path: Path, env: str) -> None:
    with pytest.raises(CredentialsError) as err:
        load_credentials(make_config(tmp_path), env, {})
    assert "KALSHI_KEY_ID" in str(err.value) and "KALSHI_PRIVATE_KEY_PATH" in str(err.value)


def test_half_a_credential_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="KALSHI_PRIVATE_KEY_PATH"):
        load_credentials(make_config(tmp_path), "sim", {"KALSHI_KEY_ID": KEY_ID})
    with pytest.raises(CredentialsError, match="KALSHI_KEY_ID"):
        load_credentials(make_config(tmp_path), "sim", {"KALSHI_PRIVATE_KEY_PATH": str(tmp_path / "k.pem")})
