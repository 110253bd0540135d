"""Every error trigrun raises on purpose.

The tree::

    TrigRunError
    ├── SpecError            (also a ValueError) a job spec or jobs file is invalid
    ├── SecretNotFound       a ``secret://`` reference resolved to nothing
    ├── TriggerFailed        the trigger request did not succeed (after retries)
    └── RunFailed            the downstream run ended badly (failed, cancelled, unknown status)
        └── RunTimeout       the wait's deadline passed before the run ended

Messages say what, where (job name, field, URL without secrets) and why. They never hold a
secret value: callers build them from redacted text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._results import RunResult, TriggerResult


class TrigRunError(Exception):
    """Root of every trigrun error."""


class SpecError(TrigRunError, ValueError):
    """A job spec is invalid. ``problems`` lists every problem found, one string each."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


class SecretNotFound(TrigRunError, LookupError):
    """A ``secret://name`` reference matched no resolver. Nothing was sent."""

    def __init__(self, reference: str, *, job: str | None = None, where: str | None = None,
                 hint: str | None = None) -> None:
        self.reference = reference
        self.job = job
        parts = [f"secret {reference!r} was not found"]
        if job:
            parts.append(f"for job {job!r}")
        if where:
            parts.append(f"(used in {where})")
        msg = " ".join(parts) + "; nothing was sent."
        if hint:
            msg += f" {hint}"
        super().__init__(msg)


class TriggerFailed(TrigRunError):
    """The trigger request failed; ``result`` holds the attempts and the (redacted) response."""

    def __init__(self, message: str, *, result: TriggerResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class RunFailed(TrigRunError):
    """The downstream run ended in a state other than success; ``run`` is the RunResult."""

    def __init__(self, message: str, *, run: RunResult | None = None) -> None:
        super().__init__(message)
        self.run = run

    @property
    def metadata(self) -> dict[str, Any]:
        return self.run.to_log() if self.run is not None else {}


class RunTimeout(RunFailed):
    """The wait's own deadline passed while the downstream run was still going."""
