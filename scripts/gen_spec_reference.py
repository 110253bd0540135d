"""Write docs/spec-reference.md from the pydantic models (every field, type, default, description).

Run: .venv/bin/python scripts/gen_spec_reference.py   (a test checks the file is up to date)
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from trigrun import _models as m

SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("JobSpec", m.JobSpec, "One job. The top level of a jobs file holds one job, a list, or `{\"jobs\": [...]}`."),
    ("schedule", m.Schedule, ""),
    ("request", m.RequestSpec, ""),
    ("retry_policy", m.RetryPolicy, ""),
    ("wait", m.WaitSpec, ""),
    ("idempotency", m.IdempotencySpec, ""),
    ("queue", m.QueueSpec, "The job's queue (the seed's `queue`): jobs of one queue name share "
     "its concurrency limit, kept by an Airflow pool, a Dagster pool, or the async engine's "
     "`fire_many` / `run_many` and `trigrun fire --all` (docs/run-many.md, docs/airflow.md, "
     "docs/dagster.md)."),
    ("auth: bearer", m.BearerAuth, ""),
    ("auth: basic", m.BasicAuth, ""),
    ("auth: header", m.HeaderAuth, ""),
    ("auth: airflow_password", m.AirflowPasswordAuth, ""),
    ("target: airflow", m.AirflowTarget, ""),
    ("target: dbt_cloud", m.DbtCloudTarget, ""),
    ("target: prefect", m.PrefectTarget, ""),
    ("target: dagster", m.DagsterTarget, ""),
]


TYPE_OVERRIDES = {
    ("JobSpec", "target"): "`auto` \\| `airflow` \\| `dbt_cloud` \\| `prefect` \\| `dagster` \\| `webhook` \\| target object",
    ("JobSpec", "auth"): "auth object (see below) \\| None",
    ("JobSpec", "kind"): "`cron` \\| `once` \\| `manual` \\| None",
    ("JobSpec", "delay_seconds"): "float \\| duration string",
}


def _type(annotation: typing.Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    for junk in ("typing.", "trigrun._models.", "datetime.", "<class '", "'>"):
        text = text.replace(junk, "")
    return text.replace("|", "\\|")


def render() -> str:
    out = ["# Job-spec reference", "",
           "Generated from the pydantic models by `scripts/gen_spec_reference.py`; do not edit.",
           "Unknown fields are errors (`extra=\"forbid\"`). Strings in `request`, `target` and",
           "`idempotency.key` may hold templates (`{{ ds }}`, `{{ scheduled_time }}`,",
           "`{{ logical_date }}`, `{{ job.name }}`, `{{ params.x }}`) and `secret://name` references.",
           ""]
    for title, model, intro in SECTIONS:
        out += [f"## {title}", ""]
        doc = intro or (model.__doc__ or "").strip()
        if doc:
            out += [doc, ""]
        out += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if field.default is not PydanticUndefined:
                default = f"`{field.default!r}`"
            elif field.default_factory is not None:
                value = field.default_factory()  # type: ignore[call-arg]
                default = "see below" if isinstance(value, BaseModel) else f"`{value!r}`"
            else:
                default = "**required**"
            desc = (field.description or "").replace("|", "\\|")
            if field.examples:
                desc += f" Example: `{field.examples[0]}`."
            typ = TYPE_OVERRIDES.get((model.__name__, name)) or _type(field.annotation)
            out.append(f"| `{name}` | {typ} | {default} | {desc} |")
        out.append("")
    return "\n".join(out)


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "docs" / "spec-reference.md"
    text = render()
    if "--check" in sys.argv:
        return 0 if target.exists() and target.read_text() == text else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
