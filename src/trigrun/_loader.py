"""Reading jobs files and turning pydantic errors into messages that name file, job and field."""

from __future__ import annotations

import gc
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import ValidationError

from ._exceptions import SpecError, SpecValidationError
from ._models import AirflowPasswordAuth, BasicAuth, BearerAuth, HeaderAuth, JobSpec

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
_TAGGED_FIELDS: dict[str, frozenset[str]] = {
    "auth": frozenset(tag for model in (BearerAuth, BasicAuth, HeaderAuth, AirflowPasswordAuth)
                      for tag in get_args(model.model_fields["type"].annotation)),
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


def validate_job(obj: Any, *, source: str | None = None, index: int | None = None,
                 show_position: bool = False) -> JobSpec:
    """``JobSpec.model_validate`` with an error that names the source, the job and the field
    (and, with ``show_position``, the job's place in the file: for names used twice)."""
    if isinstance(obj, JobSpec):
        return obj
    job = job_label(obj, index)
    if not isinstance(obj, Mapping):
        where = f"{source}: " if source else ""
        raise SpecError(f"{where}job {job}: expected an object with name, schedule and request, "
                        f"got {type(obj).__name__}")
    try:
        return JobSpec.model_validate(obj)
    except ValidationError as exc:
        position = index + 1 if show_position and index is not None else None
        raise spec_error(exc, job=job, source=source, position=position) from None


def job_label(obj: Any, index: int | None = None) -> str:
    """How a message names a job: its name, else its position in the file."""
    name = obj.get("name") if isinstance(obj, Mapping) else None
    return str(name) if name else (f"#{index + 1}" if index is not None else "<unnamed>")


def spec_error(exc: ValidationError, *, job: str, source: str | None = None,
               position: int | None = None) -> SpecValidationError:
    """``exc`` with trigrun's message: a SpecError that is still the pydantic error."""
    problems = format_validation_error(exc, job=job, source=source, position=position)
    return SpecValidationError.of(exc, "\n".join(problems), problems)


def parse_jobs(data: Any, *, source: str | None = None) -> list[JobSpec]:
    """Validate one job, a list of jobs, or ``{"jobs": [...]}``; report every problem at once."""
    where = f"{source}: " if source else ""
    if isinstance(data, Mapping) and "jobs" in data and "name" not in data:
        extra = set(data) - {"jobs"}
        if extra:
            raise SpecError(f"{where}unexpected top-level keys {sorted(extra)}; a jobs file "
                            "holds one job, a list of jobs, or {\"jobs\": [...]} only")
        data = data["jobs"]
    items = [data] if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise SpecError(f"{where}expected a job, a list of jobs or {{\"jobs\": [...]}}, "
                        f"got {type(data).__name__}")
    specs: list[JobSpec] = []
    problems: list[str] = []
    seen: dict[str, int] = {}

    def name_of(item: Any) -> Any:
        return item.name if isinstance(item, JobSpec) else (
            item.get("name") if isinstance(item, Mapping) else None)

    # Jobs sharing a name are told apart by their place in the file, in every message.
    names = [name_of(item) for item in items]
    counts = Counter(n for n in names if isinstance(n, str))
    shared = {n for n, c in counts.items() if c > 1}
    for i, item in enumerate(items):
        # Checked on the raw item, so a duplicate is reported even when the job is also invalid.
        name = names[i]
        if isinstance(name, str) and name in seen:
            problems.append(f"{where}job {name!r} (#{i + 1}), field name: duplicate of job "
                            f"#{seen[name] + 1}; job names must be unique in a file, rename one")
        elif isinstance(name, str):
            seen[name] = i
        try:
            specs.append(validate_job(item, source=source, index=i,
                                      show_position=isinstance(name, str) and name in shared))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError("\n".join(problems), problems=problems)
    return specs


# libyaml parses a jobs file about four times faster than PyYAML's pure-Python loader, and DAG
# files are parsed every 30 seconds; PyYAML wheels ship it, source builds may not.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
    # The pure-Python loader's message quotes the offending line; libyaml's does not.
    return yaml.safe_load(text)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection while a jobs file becomes DAGs or Dagster definitions
    (a context manager, or a decorator: ``@gc_paused()``).

    Building them allocates hundreds of thousands of objects, none of them garbage, and each
    allocation burst sets off collections that scan every object the process holds (Airflow's
    and Dagster's included): a third to a half of the build's time on 1,000 jobs. Cycles made
    meanwhile are collected at the next collection after it. Process-wide, for about a
    millisecond per job."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def read_file(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the jobs file ({exc.strerror})") from None
    try:
        if p.suffix.lower() == ".json":
            return json.loads(text)
        return _load_yaml(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                        f"{exc}") from None


def load_jobs(path: str | Path) -> list[JobSpec]:
    """Load a YAML or JSON jobs file: one job, a list, or ``{"jobs": [...]}``."""
    data = read_file(path)
    if data is None:
        raise SpecError(f"{path}: the file is empty; add at least one job")
    return parse_jobs(data, source=str(path))
