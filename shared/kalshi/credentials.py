"""The key this connector signs with: from the environment, or the simulator's dev key.

- ``KALSHI_KEY_ID`` + ``KALSHI_PRIVATE_KEY_PATH`` (or ``kalshi.private_key_path``): used
  for any environment; both or neither.
- Neither, env=sim: the dev key pair in ``data_dir`` (created on first use) and
  ``SIM_DEV_KEY_ID``, which the simulator trusts.
- Neither, env=demo/prod: refused with a message that says what to set.

The key id is a secret too: :class:`Credentials` never shows it in a repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from shared.config import Config, ConfigError
from shared.kalshi.auth import SIM_DEV_KEY_ID, auth_headers, ensure_dev_keypair, load_private_key


class CredentialsError(ConfigError):
    """Missing or unusable credentials; the message says how to fix it (and holds no secret)."""


class Credentials:
    __slots__ = ("_key", "_key_id", "source")

    def __init__(self, key_id: str, key: RSAPrivateKey, source: str) -> None:
        self._key_id = key_id
        self._key = key
        #: "environment" or "sim-dev-key": safe to log.
        self.source = source

    def headers(self, method: str, path: str, now_ms: int) -> dict[str, str]:
        """Fresh auth headers (a new signature every call: every handshake is signed anew)."""
        return auth_headers(self._key_id, self._key, method, path, now_ms)

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, key_id=<redacted>)"


def load_credentials(cfg: Config, env: str, environ: Mapping[str, str] | None = None) -> Credentials:
    environ = os.environ if environ is None else environ
    key_id = environ.get("KALSHI_KEY_ID", "").strip()
    path = environ.get("KALSHI_PRIVATE_KEY_PATH", "").strip() or cfg.kalshi.private_key_path
    if key_id or path:
        if not key_id:
            raise CredentialsError(
                "a private key path is set but KALSHI_KEY_ID is not: export KALSHI_KEY_ID=<the key's id>"
            )
        if not path:
            raise CredentialsError(
                "KALSHI_KEY_ID is set but no private key: export KALSHI_PRIVATE_KEY_PATH=<path to the RSA "
                "private key PEM> (chmod 600)"
            )
        return Credentials(key_id, load_private_key(path), "environment")
    if env == "sim":
        dev_path, _ = ensure_dev_keypair(cfg.data_dir)
        return Credentials(SIM_DEV_KEY_ID, load_private_key(dev_path), "sim-dev-key")
    raise CredentialsError(
        f"env={env} needs a Kalshi API key: export KALSHI_KEY_ID=<key id> and "
        "KALSHI_PRIVATE_KEY_PATH=<path to the RSA private key PEM, chmod 600> "
        f"(keys are created in your Kalshi {env} account settings; demo and prod keys differ)"
    )
