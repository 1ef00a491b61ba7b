"""Kalshi request signing: RSA-PSS over ``timestamp_ms + METHOD + path``.

Used by the connector and poller (signing) and by the exchange simulator
(verifying). The signed path is the full path from the API root, e.g.
``/trade-api/ws/v2`` or ``/trade-api/v2/markets``, never with a query string.

Secrets never leave this module in text: exceptions name files and say how to
fix them, but carry no key material, key ids or signatures.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from shared.config import ConfigError

#: Key id the exchange simulator always trusts, paired with the dev key in ``data_dir``.
SIM_DEV_KEY_ID = "kxfeed-sim-dev"
DEV_KEY_FILE = "sim-dev-key.pem"
DEV_PUBLIC_KEY_FILE = "sim-dev-key.pub.pem"

HEADER_KEY = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"

_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


#: The one rule for the private key file (code, ops/ and docs agree): nothing for others and
#: no write for the group, i.e. 0600 (owned by the user kxfeed runs as) or 0640 with a group
#: only that user is in (root:kxfeed, as ops/README installs it); 0400 / 0440 as well.
UNSAFE_KEY_BITS = 0o027
KEY_MODE_RULE = "the key must be 0600, or 0640 with a group only kxfeed is in (no access for others)"


class KeyFileError(ConfigError):
    """A private/public key that cannot be used; the message says how to fix it.

    A configuration error: restarting cannot fix a key file, so the worker exits EX_CONFIG.
    """


def _message(ts_ms: int, method: str, path: str) -> bytes:
    # Kalshi signs the path without its query string.
    return f"{ts_ms}{method.upper()}{path.split('?', 1)[0]}".encode()


def load_private_key(path: str | os.PathLike[str]) -> RSAPrivateKey:
    """Load an unencrypted RSA private key PEM (PKCS#1 or PKCS#8).

    Refuses a file whose mode breaks :data:`KEY_MODE_RULE`: a leaked key is a leaked account.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise KeyFileError(f"private key file not found: {p}") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read private key file {p}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyFileError(f"private key path is not a regular file: {p}")
    if st.st_mode & UNSAFE_KEY_BITS:
        raise KeyFileError(
            f"private key file {p} has mode {stat.S_IMODE(st.st_mode):04o}: {KEY_MODE_RULE}; "
            f"fix it with: chmod 600 {p} (or chmod 640 and chgrp to a group only kxfeed is in)"
        )
    try:
        data = p.read_bytes()
    except PermissionError:
        raise KeyFileError(
            f"private key file {p} is not readable by this user (uid {os.getuid()}): chown it to this "
            f"user (mode 0600) or chgrp it to this user's group (mode 0640)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read private key file {p}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(
            f"private key file {p} is encrypted; export it without a passphrase "
            f"(openssl pkey -in {p} -out NEW.pem) and chmod 600 the result"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        # The parser's message could quote the file; say only what is wrong with it.
        raise KeyFileError(
            f"private key file {p} is not a PEM RSA private key "
            "(expected '-----BEGIN RSA PRIVATE KEY-----' or '-----BEGIN PRIVATE KEY-----')"
        ) from None
    if not isinstance(key, RSAPrivateKey):
        raise KeyFileError(f"private key file {p} holds a {type(key).__name__}, Kalshi needs an RSA key")
    return key


def load_public_key(pem: bytes) -> RSAPublicKey:
    """Load an RSA public key PEM (SubjectPublicKeyInfo or PKCS#1)."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError("not a PEM RSA public key (expected '-----BEGIN PUBLIC KEY-----')") from None
    if not isinstance(key, RSAPublicKey):
        raise KeyFileError(f"public key is a {type(key).__name__}, Kalshi needs an RSA key")
    return key


def public_pem(key: RSAPrivateKey | RSAPublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, RSAPrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: RSAPrivateKey, ts_ms: int, method: str, path: str) -> str:
    """Base64 RSA-PSS(SHA-256, MGF1 SHA-256, salt = digest length) of ``f"{ts_ms}{METHOD}{path}"``."""
    sig = key.sign(_message(ts_ms, method, path), _PSS, hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def auth_headers(key_id: str, key: RSAPrivateKey, method: str, path: str, now_ms: int) -> dict[str, str]:
    """The three Kalshi auth headers for one request (rebuild for every request/handshake)."""
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: str(now_ms),
        HEADER_SIGNATURE: sign(key, now_ms, method, path),
    }


def verify(public_key: RSAPublicKey, signature_b64: str, ts_ms: int, method: str, path: str) -> bool:
    """True when ``signature_b64`` is a valid signature of the request by ``public_key``."""
    try:
        sig = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(sig, _message(ts_ms, method, path), _PSS, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def generate_private_key(bits: int = 2048) -> RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (what the simulator's dev key file holds)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _publish_atomically(final: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` to ``final`` only if it does not exist yet; True when this call created it.

    The content is complete before the name appears (temp file + hard link), so a
    concurrent reader never sees a half-written key, and exactly one writer wins.
    """
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # umask may have narrowed or widened nothing; be explicit
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def ensure_dev_keypair(data_dir: str | os.PathLike[str]) -> tuple[Path, bytes]:
    """Create the simulator dev key pair in ``data_dir`` once; return (private key path, public PEM).

    Safe when several processes race: one creates ``sim-dev-key.pem`` (mode 0600),
    the others load it. The public PEM is derived from the private key, and also
    written to ``sim-dev-key.pub.pem`` for people who want to look at it.
    """
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    priv_path = d / DEV_KEY_FILE
    if not priv_path.exists():
        _publish_atomically(priv_path, private_pem(generate_private_key()), 0o600)
    key = load_private_key(priv_path)
    pem = public_pem(key)
    pub_path = d / DEV_PUBLIC_KEY_FILE
    if not pub_path.exists():
        _publish_atomically(pub_path, pem, 0o644)
    return priv_path, pem
