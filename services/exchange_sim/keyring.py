"""The simulator's side of Kalshi auth: which keys it trusts and whether a request is signed by one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from shared.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SIM_DEV_KEY_ID,
    KeyFileError,
    ensure_dev_keypair,
    load_public_key,
    verify,
)


class KeyRing:
    def __init__(self, keys: Mapping[str, RSAPublicKey] | None = None, max_skew_s: float = 30.0) -> None:
        self.keys = dict(keys or {})
        self.max_skew_ms = int(max_skew_s * 1000)

    @staticmethod
    def signed(headers: Mapping[str, str]) -> bool:
        return any(h in headers for h in (HEADER_KEY, HEADER_SIGNATURE, HEADER_TIMESTAMP))

    def check(self, headers: Mapping[str, str], method: str, path: str, now_ms: int) -> str | None:
        """None when the request carries a valid, fresh signature; else the reason (for metrics).

        Reasons never include the key id or signature.
        """
        key_id = headers.get(HEADER_KEY)
        ts = headers.get(HEADER_TIMESTAMP)
        sig = headers.get(HEADER_SIGNATURE)
        if not key_id or not ts or not sig:
            return "missing_headers"
        public = self.keys.get(key_id)
        if public is None:
            return "unknown_key"
        if not ts.isdigit():
            return "bad_timestamp"
        ts_ms = int(ts)
        if abs(now_ms - ts_ms) > self.max_skew_ms:
            return "stale_timestamp"
        if not verify(public, sig, ts_ms, method, path):
            return "bad_signature"
        return None

    def key_of(self, headers: Mapping[str, str]) -> str:
        return headers.get(HEADER_KEY, "")


def trusted_keys(data_dir: str, entries: list[str]) -> dict[str, RSAPublicKey]:
    """The keys a simulator trusts: the dev key in ``data_dir`` (created if missing) plus
    ``entries`` of the form ``KEY_ID=PATH_TO_PUBLIC_PEM`` (``sim.public_keys``)."""
    _, pem = ensure_dev_keypair(data_dir)
    keys = {SIM_DEV_KEY_ID: load_public_key(pem)}
    for entry in entries:
        key_id, sep, path = entry.partition("=")
        if not sep or not key_id.strip() or not path.strip():
            raise KeyFileError(
                f"sim.public_keys entry must be KEY_ID=PATH_TO_PUBLIC_PEM (entry #{entries.index(entry) + 1})"
            )
        try:
            data = Path(path.strip()).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read public key file {path.strip()}: {exc.strerror}") from None
        keys[key_id.strip()] = load_public_key(data)
    return keys
