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

import re
from collections.abc import Mapping
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


# -- messages for pydantic's errors: file, job, field as the user wrote it, and the fix -------

_FIX_HINTS = {
    "missing": "add the field",
    "extra_forbidden": "remove it or check its spelling against docs/spec-reference.md",
    "literal_error": "use one of the allowed values",
    "union_tag_invalid": "use one of the allowed `type` values",
    "union_tag_not_found": "add `type`, e.g. \"type\": \"airflow\"",
    "greater_than": "use a larger number",
    "greater_than_equal": "use a larger number",
    "less_than": "use a smaller number",
    "less_than_equal": "use a smaller number",
    "string_too_short": "give a non-empty value",
    "string_too_long": "shorten it",
}
# Errors with no specific hint still get one: every message must say how to fix it.
_DEFAULT_HINT = "fix the value; docs/spec-reference.md lists each field's type"


# Fields holding a union told apart by ``type``: pydantic puts the member's tag in the
# location (``auth.bearer.token``), which is not a field the user wrote (``auth.token``).
# The tags are the auth models' ``type`` values (a test keeps this list equal to them: the
# models import this module, so it cannot import them).
_TAGGED_FIELDS: dict[str, frozenset[str]] = {
    "auth": frozenset({"bearer", "basic", "header", "airflow_password"}),
}
_SCHEDULE_EXAMPLE = '{"cron": "0 1 * * *", "timezone": "UTC"}'

_FIELD_PREFIX = re.compile(r"^(?P<field>[a-z_]+(?:\.[a-z_]+)*): (?P<msg>.*)$", re.DOTALL)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    skip_tag = False
    for part in loc:
        if skip_tag:  # the discriminator value that follows a tagged union
            skip_tag = False
            continue
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        text = str(part)
        # pydantic names union members in the location; they mean nothing to a user
        if text.startswith("tagged-union["):
            skip_tag = True
            continue
        if text.startswith(("literal[", "function-", "union[")) or text in ("str", "int"):
            continue
        if text in _TAGGED_FIELDS.get(out, ()):
            continue
        out += ("." if out else "") + text
    return out or "(job)"


def format_validation_error(exc: ValidationError, *, job: str, source: str | None,
                            position: int | None = None) -> list[str]:
    """One line per problem. ``position`` (1-based) tells apart jobs of one name in a file."""
    where = f"{source}: " if source else ""
    who = f"job {job!r}" + (f" (#{position})" if position is not None else "")
    problems: list[str] = []
    errors = exc.errors(include_url=False)
    in_unions = {_loc(tuple(e["loc"])) for e in errors
                 if any(str(p).startswith("tagged-union[") for p in e["loc"])}
    for err in errors:
        field = _loc(tuple(err["loc"]))
        # A "name or object" field (target): only the branch matching the input's shape speaks.
        # A dict makes the "not one of the names" error noise; a string, the "not an object" one.
        in_union = any(str(p).startswith("tagged-union[") for p in err["loc"])
        if (err["type"] == "literal_error" and isinstance(err.get("input"), Mapping)
                and any(f == field or f.startswith(field + ".") for f in in_unions)):
            continue
        if (in_union and err["type"] == "model_attributes_type"
                and isinstance(err.get("input"), str)):
            continue
        msg = err["msg"].removeprefix("Value error, ")
        if field == "schedule" and err["type"] in ("model_type", "model_attributes_type"):
            given = err.get("input")
            example = (f'{{"cron": "{given}", "timezone": "UTC"}}'
                       if isinstance(given, str) and len(given.split()) == 5 else _SCHEDULE_EXAMPLE)
            problems.append(f"{where}{who}, field schedule: a schedule is a mapping, not a "
                            f"{type(given).__name__}; write it as schedule: {example}")
            continue
        # Whole-job checks cannot set a location; they start their message with the field.
        if field == "(job)" and (m := _FIELD_PREFIX.match(msg)):
            field, msg = m["field"], m["msg"]
        hint = _FIX_HINTS.get(err["type"])
        if hint is None and err["type"] != "value_error":  # our own messages say how already
            hint = _DEFAULT_HINT
        line = f"{where}{who}, field {field}: {msg}"
        if hint and hint not in msg:
            line += f" ({hint})"
        if line not in problems:
            problems.append(line)
    return problems


def job_label(obj: Any, index: int | None = None) -> str:
    """How a message names a job: its name, else its position in the file."""
    name = obj.get("name") if isinstance(obj, Mapping) else None
    return str(name) if name else (f"#{index + 1}" if index is not None else "<unnamed>")


def spec_error(exc: ValidationError, *, job: str, source: str | None = None,
               position: int | None = None) -> SpecValidationError:
    """``exc`` with trigrun's message: a SpecError that is still the pydantic error."""
    problems = format_validation_error(exc, job=job, source=source, position=position)
    return SpecValidationError.of(exc, "\n".join(problems), problems)



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
