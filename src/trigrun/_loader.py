"""Reading jobs files and turning pydantic errors into messages that name file, job and field."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ._exceptions import SpecError
from ._models import JobSpec

_FIX_HINTS = {
    "missing": "add the field",
    "extra_forbidden": "remove it or check its spelling against docs/spec-reference.md",
    "literal_error": "use one of the allowed values",
    "union_tag_invalid": "use one of the allowed `type` values",
}


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
        out += ("." if out else "") + text
    return out or "(job)"


def format_validation_error(exc: ValidationError, *, job: str, source: str | None) -> list[str]:
    where = f"{source}: " if source else ""
    problems: list[str] = []
    errors = exc.errors(include_url=False)
    in_unions = {_loc(tuple(e["loc"])) for e in errors
                 if any(str(p).startswith("tagged-union[") for p in e["loc"])}
    for err in errors:
        field = _loc(tuple(err["loc"]))
        # A dict given for a "name or object" field: the "not one of the names" branch is noise.
        if err["type"] == "literal_error" and any(f.startswith(field + ".") for f in in_unions):
            continue
        msg = err["msg"].removeprefix("Value error, ")
        hint = _FIX_HINTS.get(err["type"])
        line = f"{where}job {job!r}, field {field}: {msg}"
        if hint and hint not in msg:
            line += f" ({hint})"
        if line not in problems:
            problems.append(line)
    return problems


def validate_job(obj: Any, *, source: str | None = None, index: int | None = None) -> JobSpec:
    """``JobSpec.model_validate`` with an error that names the source, the job and the field."""
    if isinstance(obj, JobSpec):
        return obj
    name = obj.get("name") if isinstance(obj, Mapping) else None
    job = str(name) if name else (f"#{index + 1}" if index is not None else "<unnamed>")
    if not isinstance(obj, Mapping):
        where = f"{source}: " if source else ""
        raise SpecError(f"{where}job {job}: expected an object with name, schedule and request, "
                        f"got {type(obj).__name__}")
    try:
        return JobSpec.model_validate(obj)
    except ValidationError as exc:
        problems = format_validation_error(exc, job=job, source=source)
        raise SpecError("\n".join(problems), problems=problems) from None


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
    for i, item in enumerate(items):
        try:
            spec = validate_job(item, source=source, index=i)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        if spec.name in seen:
            problems.append(f"{where}job {spec.name!r}, field name: duplicate of job "
                            f"#{seen[spec.name] + 1}; job names must be unique in a file")
        else:
            seen[spec.name] = i
        specs.append(spec)
    if problems:
        raise SpecError("\n".join(problems), problems=problems)
    return specs


def read_file(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the jobs file ({exc.strerror})") from None
    try:
        if p.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                        f"{exc}") from None


def load_jobs(path: str | Path) -> list[JobSpec]:
    """Load a YAML or JSON jobs file: one job, a list, or ``{"jobs": [...]}``."""
    data = read_file(path)
    if data is None:
        raise SpecError(f"{path}: the file is empty; add at least one job")
    return parse_jobs(data, source=str(path))
