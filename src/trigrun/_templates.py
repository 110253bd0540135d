"""Rendering ``{{ ... }}`` templates in a spec, sandboxed, before any secret is substituted."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ._exceptions import SpecError, format_validation_error
from ._models import JobSpec
from ._secrets import find_references

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_RENDERED_FIELDS = ("request", "target", "idempotency")


def iso_timestamp(when: datetime) -> str:
    """The one text form of a time in trigrun's template names, in every surface (core,
    Airflow, Dagster): ISO 8601 with ``T`` and the UTC offset, microseconds only when set
    (``2026-03-16T01:00:00+00:00``). ``str()`` of Airflow's pendulum dates puts a space
    instead of the ``T``, so it is never used for trigrun's names."""
    return datetime.isoformat(when)


def time_names(scheduled: datetime) -> dict[str, str]:
    """trigrun's time names for one scheduled fire, shared by every surface."""
    stamp = iso_timestamp(scheduled)
    return {"scheduled_time": stamp, "logical_date": stamp, "ts": stamp,
            "ds": scheduled.strftime("%Y-%m-%d"), "ds_nodash": scheduled.strftime("%Y%m%d")}


def template_context(spec: JobSpec, scheduled: datetime, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    extra = dict(extra or {})
    params = {**spec.params, **extra.pop("params", {})}
    ctx: dict[str, Any] = {
        **time_names(scheduled),
        "job": {"name": spec.name, "slug": spec.slug},
        "params": params,
    }
    ctx.update(extra)
    return ctx


def _has_template(s: str) -> bool:
    return "{{" in s or "{%" in s


# Marks each ``{{ }}`` value in a second rendering, so the check below sees where values went.
_OPEN, _CLOSE = "\x00", "\x01"
_MARKING = _ENV.overlay(finalize=lambda v: _OPEN + str(v).replace(_OPEN, "").replace(
    _CLOSE, "") + _CLOSE)
_NAME_TAIL = re.compile(r"secret://[A-Za-z0-9_.\-/]*$")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.\-/]*")


def _splices_a_reference(source: str, out: str, ctx: Mapping[str, Any],
                         allowed: frozenset[str]) -> bool:
    """Whether rendering ``source`` (which names ``secret://`` with a template in it, as in
    ``secret://api-{{ params.env }}``) let a value choose another secret: rendering added a
    ``secret://``, a value spliced into a reference holds more than name characters
    (``"x secret://DB_PASSWORD "``, or ``"DB_PASSWORD "`` cutting the written suffix off), or
    a value is itself a reference the spec's params do not name."""
    if out.count("secret://") > source.count("secret://"):
        return True
    marked = _MARKING.from_string(source).render(ctx)
    before = ""
    for piece in marked.split(_OPEN):
        value, sep, text = piece.partition(_CLOSE)
        if not sep:  # the text before the first value
            before += piece
            continue
        if _NAME_TAIL.search(before) and not _NAME_CHARS.fullmatch(value):
            return True
        if set(find_references(value)) - allowed:
            return True
        before += value + text
    return False


def _render(obj: Any, ctx: Mapping[str, Any], path: str, problems: list[str], job: str,
            allowed: frozenset[str]) -> Any:
    if isinstance(obj, str):
        if not _has_template(obj):
            return obj
        try:
            out = _ENV.from_string(obj).render(ctx)
        except TemplateError as exc:
            problems.append(f"job {job!r}, field {path}: template error: {exc}")
            return obj
        except Exception as exc:  # 1 / 0, "a" + 1...: the template is wrong, not trigrun
            problems.append(f"job {job!r}, field {path}: template error: "
                            f"{type(exc).__name__}: {exc}")
            return obj
        # A value from the run's context (e.g. Airflow conf or Dagster config a user typed)
        # must not be able to name a secret and have it sent. References count only when the
        # spec's author wrote them: in this string (`secret://{{ params.env }}-token`) or in
        # the spec's own params.
        smuggled = set(find_references(out)) - set(find_references(obj)) - allowed
        if smuggled and ("secret://" not in obj or _splices_a_reference(obj, out, ctx, allowed)):
            names = ", ".join(f"secret://{n}" for n in sorted(smuggled))
            problems.append(f"job {job!r}, field {path}: the rendered template holds {names}, "
                            "which the spec does not name; values from params or context are "
                            "never resolved as secrets, write the reference in the spec itself")
            return obj
        return out
    if isinstance(obj, dict):
        return {k: _render(v, ctx, f"{path}.{k}", problems, job, allowed) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_render(v, ctx, f"{path}[{i}]", problems, job, allowed)
                for i, v in enumerate(obj)]
    return obj


# Names a jobs file's templates may use: trigrun's own, and those of Airflow's task context
# (a jobs file may become DAGs through ``dags_from_specs``; Airflow 3.3's
# ``KNOWN_CONTEXT_KEYS``, and a test keeps them in step). Anything else is a typo.
TRIGRUN_NAMES = frozenset({"scheduled_time", "logical_date", "ts", "ds", "ds_nodash", "job",
                           "params"})
AIRFLOW_NAMES = frozenset({
    "asset_state_store", "conn", "dag", "dag_run", "data_interval_end", "data_interval_start",
    "ds", "ds_nodash", "exception", "expanded_ti_count", "inlet_events", "inlets",
    "logical_date", "macros", "map_index_template", "outlet_events", "outlets", "params",
    "partition_date", "partition_key", "prev_data_interval_end_success",
    "prev_data_interval_start_success", "prev_end_date_success", "prev_start_date_success",
    "reason", "run_id", "task", "task_instance", "task_instance_key_str",
    "task_reschedule_count", "task_state_store", "templates_dict", "test_mode", "ti",
    "triggering_asset_events", "try_number", "ts", "ts_nodash", "ts_nodash_with_tz", "var",
    "run_after", "scheduled_time", "job"})
_KNOWN = TRIGRUN_NAMES | AIRFLOW_NAMES | frozenset(_ENV.globals)


def _strings(obj: Any, path: str) -> list[tuple[str, str]]:
    if isinstance(obj, str):
        return [(path, obj)] if _has_template(obj) or "{#" in obj else []
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _strings(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in _strings(v, f"{path}[{i}]")]
    return []


def template_problems(spec: JobSpec) -> list[tuple[str, str]]:
    """``(field, problem)`` for every template of the spec that cannot render: a syntax error,
    or a name no context provides (checked without rendering: no value is needed)."""
    data = spec.model_dump(mode="json", include=set(_RENDERED_FIELDS), exclude_unset=True)
    out: list[tuple[str, str]] = []
    for name in _RENDERED_FIELDS:
        for path, text in _strings(data.get(name), name):
            try:
                tree = _ENV.parse(text)
            except TemplateSyntaxError as exc:
                out.append((path, f"template syntax error: {exc.message} (line {exc.lineno})"))
                continue
            unknown = sorted(meta.find_undeclared_variables(tree) - _KNOWN)
            if unknown:
                out.append((path, f"the template uses {', '.join(unknown)}, which no template "
                            "context defines; trigrun's names are "
                            f"{', '.join(sorted(TRIGRUN_NAMES))} (and Airflow's in a DAG); "
                            "params go under params.<name>"))
    return out


def needs_render(spec: JobSpec) -> bool:
    data = spec.model_dump(mode="json", include=set(_RENDERED_FIELDS))
    return "{{" in str(data) or "{%" in str(data)


def render_spec(spec: JobSpec, ctx: Mapping[str, Any]) -> JobSpec:
    """The spec with templates in url, headers, body, target fields and idempotency key rendered."""
    if not needs_render(spec):
        return spec
    data = spec.model_dump(mode="json", exclude_unset=True)
    problems: list[str] = []
    allowed = frozenset(find_references(spec.params))
    for name in _RENDERED_FIELDS:
        if name in data:
            data[name] = _render(data[name], ctx, name, problems, spec.name, allowed)
    if problems:
        raise SpecError("\n".join(problems), problems=problems)
    try:
        return JobSpec.model_validate(data)
    except Exception as exc:
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            lines = format_validation_error(exc, job=spec.name, source="after rendering templates")
            raise SpecError("\n".join(lines), problems=lines) from None
        raise
