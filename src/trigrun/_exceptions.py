"""Every error trigrun raises on purpose.

The tree::

    TrigRunError
    ├── SpecError            (also a ValueError) a job spec or jobs file is invalid
    │   └── SpecValidationError  (also pydantic's ValidationError) a spec failed validation
    ├── SecretNotFound       a ``secret://`` reference resolved to nothing
    ├── TriggerFailed        the trigger request did not succeed (after retries)
    └── RunFailed            the downstream run ended badly (failed, cancelled, unknown status)
        └── RunTimeout       the wait's deadline passed before the run ended

Messages say what, where (job name, field, URL without secrets) and why. They never hold a
secret value: callers build them from redacted text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    from ._results import RunResult, TriggerResult


class TrigRunError(Exception):
    """Root of every trigrun error."""


class SpecError(TrigRunError, ValueError):
    """A job spec is invalid. ``problems`` lists every problem found, one string each."""

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems if problems is not None else [message]


class SpecValidationError(SpecError, ValidationError):
    """A job spec failed validation (``JobSpec.model_validate``, ``load_jobs``).

    Both errors in one, so ``except trigrun.SpecError`` and ``except pydantic.ValidationError``
    catch it alike: the message is trigrun's (file, job, field as written in the spec, how to
    fix it; no links to pydantic's site, no input values, which may be secrets), while
    ``errors()``, ``error_count()`` and ``title`` are pydantic's, unchanged.
    """

    # pydantic builds the instance (``from_exception_data`` calls ``cls(title, line_errors,
    # ...)``); ``of`` then gives it trigrun's message.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @classmethod
    def of(cls, error: ValidationError, message: str,
           problems: list[str] | None = None) -> SpecValidationError:
        """``error`` as a SpecValidationError with ``message`` (and ``problems``)."""
        line_errors: list[Any] = [
            {"type": e["type"], "loc": e["loc"], "input": e["input"],
             **({"ctx": e["ctx"]} if "ctx" in e else {})}
            for e in error.errors(include_url=False)]
        self = cls.from_exception_data(error.title, line_errors, hide_input=True)
        SpecError.__init__(self, message, problems=problems)
        return self

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> Any:
        # pydantic's own pickling rebuilds a plain ValidationError; keep the message.
        return (SpecError, (str(self),), {"problems": self.problems})


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
