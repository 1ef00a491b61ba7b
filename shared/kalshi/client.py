"""The REST client the poller and the gap filler use: budgeted, signed when a key is set.

Kalshi serves market data unsigned, so without credentials (demo/prod) requests go
unsigned; a configured key (``KALSHI_KEY_ID`` + private key) signs every request, and
the simulator's dev key signs in the embedded default, as the connector does.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from shared.config import Config, GapfillConfig, PollerConfig
from shared.kalshi.credentials import load_credentials
from shared.kalshi.endpoints import resolve
from shared.kalshi.ratelimit import TokenBucket
from shared.kalshi.rest import RestClient, Signer


def signer(cfg: Config, env: str, environ: Mapping[str, str] | None = None) -> Signer | None:
    environ = os.environ if environ is None else environ
    configured = (
        environ.get("KALSHI_KEY_ID", "").strip()
        or environ.get("KALSHI_PRIVATE_KEY_PATH", "").strip()
        or cfg.kalshi.private_key_path
    )
    if env != "sim" and not configured:
        return None
    creds = load_credentials(cfg, env, environ)

    def sign(method: str, path: str) -> dict[str, str]:
        return creds.headers(method, path, time.time_ns() // 1_000_000)

    return sign


def make_client(cfg: Config, section: PollerConfig | GapfillConfig) -> tuple[RestClient, str]:
    """A client with this worker's share of the tier's read budget (its ``rest_*`` settings);
    and the environment name."""
    endpoints = resolve(cfg)
    client = RestClient(
        endpoints.rest_url,
        signer=signer(cfg, endpoints.env),
        timeout_s=section.rest_timeout_s,
        max_retries=section.rest_max_retries,
        bucket=TokenBucket.for_tier(section.rest_tier, section.rest_budget_share),
    )
    return client, endpoints.env
