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
    out.append(PRESET_REQUESTS)
    return "\n".join(out)


# What each short-form target sends, and why (docs/idempotency.md and docs/batching.md say more).
PRESET_REQUESTS = """## What each preset sends

| target | trigger | before the trigger (exactly once) | status | batched status | cancel |
|---|---|---|---|---|---|
| airflow | `POST /api/{v2,v1}/dags/{dag_id}/dagRuns` with `dag_run_id` = the key, `conf`, `note`, `logical_date` (v2: `null` unless set; it is required but nullable there) | none: a repeat is answered `409` and the run `GET .../dagRuns/{dag_run_id}` adopted | `GET .../dagRuns/{dag_run_id}` | the DAG's active runs, `GET .../dagRuns?state=queued&state=running&order_by=id&limit=100&offset=k`, then the ended ones (`end_date_gte`), v1 and v2 alike | state read first, then `PATCH .../dagRuns/{dag_run_id}` `{"state": "failed"}` |
| dbt_cloud | `POST /api/v2/accounts/{a}/jobs/{j}/run/` with `cause` ending ` [key]` (255 characters at most; the key is never cut) and `steps_override` | `GET /api/v2/accounts/{a}/runs/?job_definition_id={j}&order_by=-id&limit=20&include_related=["trigger"]`: a run lists its `trigger` (and so its `cause`) only when asked | `GET /api/v2/accounts/{a}/runs/{id}/` | the job's active runs (`status__in=[1,2,3]`, paged), then the ended ones by id (`pk__in=[...]`, one request per 100) | state read first, then `POST .../runs/{id}/cancel/` |
| prefect | `POST /api/deployments/{id}/create_flow_run` with `parameters` and `idempotency_key` = `<deployment id>:<key>` (Prefect keeps keys unique per flow) | none: Prefect answers 200 with the existing run | `GET /api/flow_runs/{id}` | `POST /api/flow_runs/filter` `{"flow_runs": {"id": {"any_": [...]}}, "limit": n}` | `POST /api/flow_runs/{id}/set_state` `CANCELLING`, never `force`; `ACCEPT`, or `REJECT` leaving the run `CANCELLED`/`CANCELLING`, is a cancel |
| dagster | GraphQL `launchRun` with the selector (`repositoryLocationName` required, never empty), `runConfigData` and the tag `trigrun/idempotency_key` | `runsOrError(filter: {tags: [key tag]})` | `runOrError` | `runsOrError(filter: {runIds: [...]}, limit: n)` | `terminateRun`; `TerminateRunSuccess` is a cancel |
| webhook | the request as written, plus `Idempotency-Key` | none: a replay is adopted; a `409` naming no run is retried (the Idempotency-Key draft: still being processed) | `wait.status_url` | `wait.batch_status_url` | `wait.cancel_url`, after reading the status |

Airflow, Dagster and Prefect are run for real in the test suite; dbt Cloud cannot run here,
and what trigrun sends it is proven against a fake that validates every request against a
description of dbt Cloud's published API v2 (`tests/contracts/dbt_cloud.yaml`).
"""


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "docs" / "spec-reference.md"
    text = render()
    if "--check" in sys.argv:
        return 0 if target.exists() and target.read_text() == text else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
