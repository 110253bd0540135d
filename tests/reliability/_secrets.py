"""The canary secrets of the reliability suite, and searching for them.

Fresh random values per session: a hit can only come from this run. They are given to trigrun
as ``secret://rel_token`` / ``secret://rel_key`` (engine: a mapping; Airflow: variables from the
environment; Dagster: ``EnvVar``) and must never show up anywhere but on the wire.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

TOKEN = "canary-token-" + secrets.token_hex(12)
KEY = "canary-key-" + secrets.token_hex(12)
# The user name of the proxy the proxy scenarios go through (its password is KEY).
PROXY_USER = "canary-proxy-user-" + secrets.token_hex(8)
SECRETS = {"rel_token": TOKEN, "rel_key": KEY, "rel_proxy_user": PROXY_USER}
# Environment variables the Airflow and Dagster paths read them from.
ENV = {
    "AIRFLOW_VAR_REL_TOKEN": TOKEN,
    "AIRFLOW_VAR_REL_KEY": KEY,
    "AIRFLOW_VAR_REL_PROXY_USER": PROXY_USER,
    "TRIGRUN_RELIABILITY_PROXY_USER": PROXY_USER,
    "TRIGRUN_RELIABILITY_TOKEN": TOKEN,
    "TRIGRUN_RELIABILITY_KEY": KEY,
}
DAGSTER_SECRETS_ENV = {"rel_token": "TRIGRUN_RELIABILITY_TOKEN",
                       "rel_key": "TRIGRUN_RELIABILITY_KEY",
                       "rel_proxy_user": "TRIGRUN_RELIABILITY_PROXY_USER"}

Evidence = tuple[str, "str | bytes"]


def hits(evidence: Iterable[Evidence], values: Iterable[str] = (TOKEN, KEY)) -> list[str]:
    """Where any of ``values`` occurs: ``["<where>: <which>"]``, empty when nowhere."""
    found = []
    wanted = [v for v in values if v]
    for where, content in evidence:
        for value in wanted:
            needle: str | bytes = value.encode() if isinstance(content, bytes) else value
            if needle in content:  # type: ignore[operator]
                found.append(f"{where}: {value[:14]}...")
    return found
