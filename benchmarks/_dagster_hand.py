"""Hand-written Dagster definitions of the shape ``build_trigrun_definitions`` builds, for the
parse benchmark's comparison: what a user would write for the same jobs file. Per job an
asset whose op takes a pythonic config class (as Dagster's docs show), the asset job that
materializes it and a schedule for its cron; one resource; one ``Definitions``.

No ``from __future__ import annotations`` here: Dagster reads the op's annotations at
definition time and must resolve ``dg`` in this module."""

from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field


class FireConfig(dg.Config):
    scheduled_time: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    wait: bool | None = None


class Http(dg.ConfigurableResource):  # type: ignore[type-arg]
    timeout_seconds: float = 30.0


def _one(job: dict[str, Any]) -> tuple[Any, Any, Any]:
    slug = "".join(c if c.isalnum() else "_" for c in job["name"].lower())
    key = dg.AssetKey(["trigrun", slug])

    @dg.multi_asset(name=f"fire_{slug}", specs=[dg.AssetSpec(
        key, group_name="trigrun", kinds={"trigrun"}, description=f"Runs of {slug}",
        metadata={"trigrun_job": job["name"]}, skippable=True)],
        required_resource_keys={"trigrun"}, op_tags={"kind": "trigrun"})
    def fire(context: dg.AssetExecutionContext, config: FireConfig) -> Any:
        yield dg.MaterializeResult(asset_key=key)

    asset_job = dg.define_asset_job(name=slug, selection=dg.AssetSelection.assets(key),
                                    tags={"trigrun/job": job["name"]},
                                    executor_def=dg.in_process_executor)
    schedule = None
    cron = (job.get("schedule") or {}).get("cron")
    if cron:
        @dg.schedule(name=f"{slug}_schedule", cron_schedule=cron, job=asset_job,
                     execution_timezone=job["schedule"].get("timezone", "UTC"),
                     default_status=dg.DefaultScheduleStatus.STOPPED)
        def tick(context: dg.ScheduleEvaluationContext) -> Any:
            return dg.RunRequest(run_key=str(context.scheduled_execution_time))

        schedule = tick
    return fire, asset_job, schedule


def build(path: Path) -> int:
    jobs = yaml.safe_load(path.read_text())["jobs"]
    built = [_one(job) for job in jobs]
    defs = dg.Definitions(assets=[a for a, _, _ in built], jobs=[j for _, j, _ in built],
                          schedules=[s for _, _, s in built if s is not None],
                          resources={"trigrun": Http()})
    return len(list(defs.jobs or []))
