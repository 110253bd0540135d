"""trigrun: run external HTTP-triggered jobs from inside Airflow and Dagster."""

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
