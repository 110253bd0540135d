"""What trigrun adds around Airflow's own template rendering (no Airflow imports at module
level): trigrun's names in the Jinja context, the check that no ``secret://`` reference came
from rendered data, and the coercion of scalar arguments that are templated (a rendered
template is a string: ``"30"``, ``"true"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .._duration import parse_duration
from .._exceptions import SpecError
from .._origins import Connection, authored_origins, origin, refused
from .._secrets import find_references
from .._templates import iso_timestamp, time_names

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def duration(value: Any, task_id: str, arg: str) -> float | None:
    """Seconds from a number, a ``timedelta`` or a string (``"30"``, ``"30s"``, ``"1h30m"``)."""
    if _unset(value):
        return None
    fix = ("give seconds (30, 2.5), a datetime.timedelta, or a string such as '30', '30s', "
           "'5m', '1h30m'")
    if isinstance(value, bool):
        raise SpecError(f"task {task_id!r}: {arg}={value!r} is not a duration; {fix}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration(value)  # the job spec's reading (delay_seconds)
        except ValueError:
            raise SpecError(f"task {task_id!r}: {arg}={value!r} is not a duration; "
                            f"{fix}") from None
    else:
        raise SpecError(f"task {task_id!r}: {arg}={value!r} ({type(value).__name__}) is not a "
                        f"duration; {fix}")
    if seconds <= 0:
        raise SpecError(f"task {task_id!r}: {arg}={value!r} must be more than 0 seconds")
    return seconds


def flag(value: Any, task_id: str, arg: str) -> bool | None:
    """A bool from ``True``/``False`` or a rendered ``"true"``/``"false"`` (``None``: default)."""
    if _unset(value):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise SpecError(f"task {task_id!r}: {arg}={value!r} is not a boolean; give True or False "
                    "(or a template that renders 'true' or 'false')")


def airflow_names(context: Mapping[str, Any], when: datetime, job_name: str,
                  slug: str) -> dict[str, Any]:
    """The Jinja context with trigrun's names added, and Airflow's logical-date names filled
    from the scheduled time when the run has no logical date (Airflow 3 manual and
    asset-triggered runs leave them out, so ``{{ logical_date }}`` was undefined). Airflow's
    own values win when it has them."""
    import pendulum

    core = time_names(when)
    moment = pendulum.instance(when)
    ts = iso_timestamp(when)
    fallback: dict[str, Any] = {
        # An Airflow-typed date, so `{{ logical_date.strftime(...) }}` and macros work the
        # same in runs with and without a logical date.
        "logical_date": moment, "ds": core["ds"], "ds_nodash": core["ds_nodash"], "ts": ts,
        "ts_nodash": when.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        "scheduled_time": core["scheduled_time"],
        "job": {"name": job_name, "slug": slug},
    }
    merged = dict(context)
    for key, value in fallback.items():
        if merged.get(key) is None:
            merged[key] = value
    return merged


def smuggled_references(source: Any, rendered: Any, path: str,
                        allowed: frozenset[str]) -> list[tuple[str, list[str]]]:
    """``(field, names)`` for every ``secret://`` name in ``rendered`` that the template
    source does not hold literally at the same place (nor in the spec's own params).

    The rendered value may hold anything a Jinja expression reached: run conf typed by whoever
    triggered the DAG, params (which run conf overrides), XCom, variables, macros. A
    reference that only rendering produced would make trigrun send that secret's value to
    the target, so it is refused, whatever source it came from.
    """
    out: list[tuple[str, list[str]]] = []
    if isinstance(source, Mapping) and isinstance(rendered, Mapping):
        for key, value in rendered.items():
            out += smuggled_references(source.get(key), value, f"{path}.{key}" if path else
                                       str(key), allowed)
        return out
    if isinstance(source, (list, tuple)) and isinstance(rendered, (list, tuple)) \
            and len(source) == len(rendered):
        for i, (s, r) in enumerate(zip(source, rendered, strict=True)):
            out += smuggled_references(s, r, f"{path}[{i}]", allowed)
        return out
    literal = set(find_references(source)) if _plain(source) else set()
    extra = [n for n in find_references(rendered) if n not in literal and n not in allowed]
    if extra:
        out.append((path or "spec", extra))
    return out


def _plain(value: Any) -> bool:
    """JSON-like data the DAG's author wrote (not an XComArg or another lazy object)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, Mapping):
        return all(_plain(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return False


def refuse_smuggled(task_id: str, source: Mapping[str, Any], rendered: Mapping[str, Any],
                    runtime_fields: tuple[tuple[str, ...], ...] = ()) -> None:
    """Raise ``SpecError`` naming the task and every field that got a reference by rendering.

    ``runtime_fields`` are spec paths whose "source" value came from data at run time, not
    from the DAG file (a mapped argument expanded from XCom): nothing in them counts as
    written by the author.
    """
    src: Any = _without(source, runtime_fields)
    allowed = frozenset(find_references(src.get("params") or {})) if _plain(
        src.get("params")) else frozenset()
    found = smuggled_references(src, rendered, "", allowed)
    if not found:
        return
    lines = [f"task {task_id!r}, field {field}: the rendered template holds "
             + ", ".join(f"secret://{n}" for n in names)
             + ", which the DAG file does not name there" for field, names in found]
    message = ("\n".join(lines) + "\nnothing was sent. A secret:// reference that comes out of "
               "rendering (run conf, params, XCom, variables, macros, mapped XCom values) is "
               "never resolved: write the reference literally in the operator's arguments.")
    raise SpecError(message, problems=lines)


def _without(source: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
    out: dict[str, Any] = dict(source)
    for path in paths:
        if not path:
            return {}
        node: Any = out
        for i, key in enumerate(path):
            if not isinstance(node, dict) or key not in node:
                break
            if i == len(path) - 1:
                node[key] = None
            else:
                node[key] = dict(node[key]) if isinstance(node[key], Mapping) else node[key]
                node = node[key]
    return out


def bound_origins(source: Mapping[str, Any],
                  runtime_fields: tuple[tuple[str, ...], ...] = (),
                  task_id: str = "") -> tuple[dict[str, str | None], bool]:
    """What the DAG file's spec (before rendering) binds credentials to: ``(authored origins
    by field, whether the spec's own allowed_origins were written in the DAG file)``.
    Mapped arguments expanded from XCom (``runtime_fields``) name no origin."""
    listed = source.get("allowed_origins")
    templated = [o for o in listed if isinstance(o, str) and is_template(o)] if isinstance(
        listed, (list, tuple)) else []
    if templated:
        # Rendered, the entry would name an origin whoever sets the conf or params chooses.
        raise SpecError(
            f"task {task_id!r}, field allowed_origins: {templated[0]!r} is a template; nothing "
            "was sent. allowed_origins are written literally (no templates), e.g. "
            "'https://api.example.com'")
    allow_list_written = not any(p in ((), ("allowed_origins",)) for p in runtime_fields) \
        and _plain(listed)
    return authored_origins(source, runtime_fields), allow_list_written


def refuse_foreign_origins(task_id: str, spec: Any, bound: tuple[dict[str, str | None], bool]
                           | None, info: Any = None) -> None:
    """Raise ``SpecError`` when the completed spec (a ``JobSpec``) would send credentials (the
    connection's ``info``, or the spec's own) to an origin they are not bound to
    (``trigrun._origins``). ``bound``: from ``bound_origins`` at render time; None when the
    spec was never rendered (it is then as the DAG file wrote it)."""
    data = spec.model_dump(mode="json", exclude_unset=True)
    authored = None
    if bound is not None:
        authored, allow_list_written = bound
        if not allow_list_written:
            data.pop("allowed_origins", None)
    connection = None
    if info is not None:
        connection = Connection(name=info.conn_id, prefix=f"conn/{info.conn_id}/",
                                origin=origin(info.base_url) if info.base_url else None,
                                allowed=frozenset(info.allowed_origins))
    problems = refused(data, who=f"task {task_id!r}", authored=authored, connection=connection)
    if problems:
        raise SpecError("\n".join(problems), problems=problems)


def _templates_in(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [path] if is_template(value) or "{#" in value else []
    if isinstance(value, Mapping):
        out: list[str] = []
        for k, v in value.items():
            out += _templates_in(k, f"{path}.<key>") + _templates_in(v, f"{path}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _templates_in(v, f"{path}[{i}]")]
    return []


def refuse_mapped_templates(task_id: str, map_index: int | None,
                            values: Mapping[str, Any]) -> None:
    """Raise ``SpecError`` when a value mapped from XCom (``expand``/``expand_kwargs``) holds
    template syntax: such values are data, written by an upstream task, and Airflow would
    otherwise evaluate them as templates of this task (``{{ conn.x.password }}``)."""
    found = [p for arg, value in values.items() for p in _templates_in(value, arg)]
    if not found:
        return
    where = f"task {task_id!r}" + (f" (map index {map_index})" if map_index is not None
                                   and map_index >= 0 else "")
    lines = [f"{where}, argument {p}: the value mapped from XCom holds template syntax "
             "('{{', '{%' or '{#')" for p in found]
    message = ("\n".join(lines) + "\nnothing was sent. Values an upstream task returns are "
               "data and are never evaluated as templates (docs/security.md): render them in "
               "the upstream task, or set render_mapped_values=True on the operator if the "
               "DAG relies on Airflow rendering mapped values.")
    raise SpecError(message, problems=lines)
