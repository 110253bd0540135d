"""trigrun: run external HTTP-triggered jobs from inside Airflow and Dagster.

The public names below are resolved lazily (PEP 562): Airflow imports ``trigrun.airflow`` (and so
this package) in every component while it discovers providers, so importing ``trigrun`` must not
import the engine, its HTTP clients (httpx, aiohttp), pydantic models or jinja2. Each name loads
its module on first use::

    from trigrun import Engine, load_jobs
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._engine import AsyncEngine, Engine
    from ._exceptions import (
        RunFailed,
        RunTimeout,
        SecretNotFound,
        SpecError,
        SpecValidationError,
        TriggerFailed,
        TrigRunError,
    )
    from ._flow import Event, idempotency_key
    from ._loader import load_jobs, parse_jobs
    from ._models import JobSpec
    from ._results import Attempt, JobRun, RunResult, RunState, TriggerResult
    from ._schedule import next_fire_times
    from ._secrets import EnvSecrets
    from ._targets import RunStatus
    from ._upstream import Upstream

from ._version import __version__

_EXPORTS = {
    "AsyncEngine": "_engine",
    "Attempt": "_results",
    "Engine": "_engine",
    "EnvSecrets": "_secrets",
    "Event": "_flow",
    "JobRun": "_results",
    "JobSpec": "_models",
    "RunFailed": "_exceptions",
    "RunResult": "_results",
    "RunState": "_results",
    "RunStatus": "_targets",
    "RunTimeout": "_exceptions",
    "SecretNotFound": "_exceptions",
    "SpecError": "_exceptions",
    "SpecValidationError": "_exceptions",
    "TrigRunError": "_exceptions",
    "TriggerFailed": "_exceptions",
    "TriggerResult": "_results",
    "Upstream": "_upstream",
    "idempotency_key": "_flow",
    "load_jobs": "_loader",
    "next_fire_times": "_schedule",
    "parse_jobs": "_loader",
}

__all__ = [
    "AsyncEngine",
    "Attempt",
    "Engine",
    "EnvSecrets",
    "Event",
    "JobRun",
    "JobSpec",
    "RunFailed",
    "RunResult",
    "RunState",
    "RunStatus",
    "RunTimeout",
    "SecretNotFound",
    "SpecError",
    "SpecValidationError",
    "TrigRunError",
    "TriggerFailed",
    "TriggerResult",
    "Upstream",
    "__version__",
    "idempotency_key",
    "load_jobs",
    "next_fire_times",
    "parse_jobs",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
