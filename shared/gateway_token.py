"""The gateway's bearer token: where it comes from and when it is required.

Read by the gateway at start and by the preflight (``kxfeed check``, ``kxfeed up``), so a
gateway that would listen beyond loopback without a token is refused before anything starts.
The token comes from ``KXFEED_GATEWAY_TOKEN`` or from the file ``[gateway] token_file`` names
(never from a config value); it never appears in a log, a metric or an error.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping

from shared.config import ConfigError, GatewayConfig

TOKEN_ENV = "KXFEED_GATEWAY_TOKEN"
#: Shorter tokens are guessable; longer ones are not a header anyone sends.
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; anything else (0.0.0.0, a name, a LAN
    address) may be reachable from elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _checked(token: str, origin: str) -> str:
    if len(token) < MIN_TOKEN_CHARS or len(token) > MAX_TOKEN_CHARS:
        raise ConfigError(
            f"{origin}: the gateway token must be {MIN_TOKEN_CHARS}..{MAX_TOKEN_CHARS} characters"
        )
    if not all(33 <= ord(c) <= 126 for c in token):
        raise ConfigError(f"{origin}: the gateway token must be printable ASCII without spaces")
    return token


def load_token(cfg: GatewayConfig, environ: Mapping[str, str] | None = None) -> str:
    """The token ("" = none configured); a bad or exposed one is a :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    value = environ.get(TOKEN_ENV, "")
    if value:
        return _checked(value.strip(), TOKEN_ENV)
    if not cfg.token_file:
        return ""
    origin = f"[gateway] token_file {cfg.token_file}"
    try:
        st = os.stat(cfg.token_file)
        with open(cfg.token_file, encoding="ascii") as fh:
            text = fh.read(MAX_TOKEN_CHARS + 2)
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not ASCII text"
        raise ConfigError(f"{origin}: cannot read it ({why})") from None
    if st.st_mode & (stat.S_IRWXO):
        raise ConfigError(f"{origin}: readable by other users: chmod 600 it")
    return _checked(text.strip(), origin)


def token_problem(cfg: GatewayConfig, environ: Mapping[str, str] | None = None) -> str:
    """One line saying why the gateway must not start with this config, or ""."""
    try:
        token = load_token(cfg, environ)
    except ConfigError as exc:
        return str(exc)
    if not token and not is_loopback(cfg.host):
        return (
            f"[gateway] host {cfg.host!r} is not a loopback address: a token is required "
            f'(set {TOKEN_ENV} or [gateway] token_file), or bind host = "127.0.0.1"'
        )
    return ""
