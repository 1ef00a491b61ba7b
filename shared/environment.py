"""Every environment variable kxfeed reads: one table, shown (redacted) by ``kxfeed config check``
and mirrored in README.md (tests/unit/test_environment.py greps the code for environment reads
and fails on any name missing here or in the README).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple


class EnvVar(NamedTuple):
    name: str
    #: A secret's value is never shown, only whether it is set.
    secret: bool
    what: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "KXFEED_CONFIG", False, "config file when no --config is given (default: the packaged default.toml)"
    ),
    EnvVar(
        "KXFEED_<SECTION>_<KEY>",
        False,
        "overrides one config key, e.g. KXFEED_DB_URL, KXFEED_KALSHI_ENV (lists: comma-separated)",
    ),
    EnvVar("KALSHI_ENV", False, "sim | demo | prod: overrides [kalshi] env"),
    EnvVar("KALSHI_KEY_ID", True, "Kalshi API key id (demo/prod; never read from a config file)"),
    EnvVar(
        "KALSHI_PRIVATE_KEY_PATH",
        False,
        "path of the RSA private key PEM (mode 0600, or 0640 with a group only kxfeed is in); "
        "overrides [kalshi] private_key_path",
    ),
    EnvVar(
        "ODDS_API_KEY", True, "The Odds API key: the arb's sportsbook odds against real Kalshi (demo/prod)"
    ),
    EnvVar(
        "KXFEED_GATEWAY_TOKEN",
        True,
        "the gateway's bearer token (wins over [gateway] token_file; required off loopback)",
    ),
    EnvVar(
        "KXFEED_EXIT_NOTE",
        False,
        "set by the supervisor for each child: where a worker leaves its one-line config error",
    ),
    EnvVar(
        "KXFEED_TEST_PG_URL",
        True,
        "tests only: the PostgreSQL the suite uses (default postgres@127.0.0.1/test)",
    ),
    EnvVar(
        "KXFEED_REQUIRE_POSTGRES",
        False,
        "tests only: fail instead of skipping when PostgreSQL is unreachable",
    ),
    EnvVar(
        "KXFEED_REQUIRE_BROWSER",
        False,
        "tests only: fail instead of skipping the browser test when no Chromium is installed",
    ),
    EnvVar(
        "KXFEED_REQUIRE_NETNS",
        False,
        "tests only: fail instead of skipping the multi-host test when network namespaces cannot be made",
    ),
    EnvVar(
        "KXFEED_E2E_RUN_S",
        False,
        "tests only: seconds the whole-pipeline test runs the system (default 60; less for a quick run)",
    ),
    EnvVar(
        "KXFEED_CHROMIUM",
        False,
        "tests only: the Chromium binary the browser test drives (default: `chromium` on PATH)",
    ),
)


#: The KXFEED_ variables that are not ``KXFEED_<SECTION>_<KEY>`` config overrides: derived from
#: the one table, so a variable documented here is never read as an override (CI's
#: KXFEED_REQUIRE_BROWSER once made every worker refuse its config).
NON_CONFIG_ENV = frozenset(v.name for v in ENV_VARS if v.name.startswith("KXFEED_") and "<" not in v.name)


def shown(var: EnvVar, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value for humans: secrets and URL passwords redacted."""
    environ = os.environ if environ is None else environ
    value = environ.get(var.name)
    if value is None:
        return "(not set)"
    if var.secret:
        return "(set)"
    return value


def overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``KXFEED_<SECTION>_<KEY>`` overrides set now (URLs with their password hidden)."""
    environ = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for name, value in sorted(environ.items()):
        if name.startswith("KXFEED_") and name not in NON_CONFIG_ENV:
            out[name] = redact_url(value) if "://" in value else value
    return out


def redact_url(url: str) -> str:
    """``user:password@host`` -> ``user:***@host`` (for messages; the password never shows).
    Plain string work: the preflight and the CLI use it without importing SQLAlchemy."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if at and ":" in creds:
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
    return url
