"""Small immutable records: what a fire did and how a downstream run ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._exceptions import RunFailed, RunTimeout, TriggerFailed

if TYPE_CHECKING:
    from ._models import JobSpec


class RunState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


@dataclass(frozen=True)
class Attempt:
    number: int
    status_code: int | None
    error: str | None
    duration_ms: float
    delay_before_ms: float

    def to_log(self) -> dict[str, Any]:
        return {"number": self.number, "status_code": self.status_code, "error": self.error,
                "duration_ms": round(self.duration_ms, 1),
                "delay_before_ms": round(self.delay_before_ms, 1)}


@dataclass(frozen=True)
class TriggerResult:
    """What one fire did. Everything here is already redacted."""

    job: str
    ok: bool
    status_code: int | None
    duration_ms: float
    attempts: tuple[Attempt, ...]
    response: Any
    run_id: str | None
    run_url: str | None
    idempotency_key: str | None
    scheduled_time: str | None
    target: str
    skipped: bool = False
    reason: str | None = None
    adopted: bool = False
    truncated: bool = False
    error: str | None = None
    spec: JobSpec | None = field(default=None, repr=False, compare=False)

    def to_log(self) -> dict[str, Any]:
        """The execution log: status, duration, response. JSON-serializable, no secrets."""
        return {
            "job": self.job,
            "ok": self.ok,
            "status": self.status_code,
            "duration_ms": round(self.duration_ms, 1),
            "attempts": [a.to_log() for a in self.attempts],
            "response": self.response,
            "response_truncated": self.truncated,
            "run_id": self.run_id,
            "run_url": self.run_url,
            "idempotency_key": self.idempotency_key,
            "scheduled_time": self.scheduled_time,
            "target": self.target,
            "skipped": self.skipped,
            "reason": self.reason,
            "adopted": self.adopted,
            "error": self.error,
        }

    def raise_for_failure(self) -> TriggerResult:
        if not self.ok:
            raise TriggerFailed(self.error or f"job {self.job!r}: trigger failed", result=self)
        return self


@dataclass(frozen=True)
class RunResult:
    """How a downstream run ended (or where it stood when the wait stopped)."""

    job: str
    state: RunState
    run_id: str
    run_url: str | None
    message: str
    polls: int
    duration_ms: float
    raw_status: Any = None
    target: str = ""

    @property
    def ok(self) -> bool:
        return self.state is RunState.SUCCESS

    def to_log(self) -> dict[str, Any]:
        return {"job": self.job, "state": self.state.value, "run_id": self.run_id,
                "run_url": self.run_url, "message": self.message, "polls": self.polls,
                "duration_ms": round(self.duration_ms, 1), "raw_status": self.raw_status,
                "target": self.target}

    def raise_for_failure(self) -> RunResult:
        if self.state is RunState.TIMEOUT:
            raise RunTimeout(self.message, run=self)
        if self.state is not RunState.SUCCESS:
            raise RunFailed(self.message, run=self)
        return self


@dataclass(frozen=True)
class JobRun:
    """One job of ``AsyncEngine.run_many``: its fire and, when the job waits, how its run
    ended (None: the job does not wait, or there was no run to wait on)."""

    trigger: TriggerResult
    run: RunResult | None = None

    @property
    def ok(self) -> bool:
        """The fire succeeded (or was skipped) and the run, if waited on, succeeded."""
        return self.trigger.ok and (self.run is None or self.run.ok)

    @property
    def job(self) -> str:
        return self.trigger.job

    def to_log(self) -> dict[str, Any]:
        return {"trigger": self.trigger.to_log(),
                "run": self.run.to_log() if self.run is not None else None}
