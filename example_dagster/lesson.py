"""The Dagster ETL course's daily schedule pattern (lesson 4), with trigrun.

The lesson's schedule reads ``context.scheduled_execution_time`` and puts the date into the
run config of ``asteroid_job``. Here the job lives in another Dagster deployment, so trigrun
fires it over GraphQL: the spec's ``{{ ds }}`` is rendered from the schedule's tick, which
``build_trigrun_schedule`` passes in the run config, exactly as the lesson does.
"""

from datetime import datetime

import dagster as dg

from trigrun.dagster import (
    TrigRunResource,
    build_trigrun_job,
    build_trigrun_schedule,
    trigger_metadata,
)

ASTEROIDS = {
    "name": "Asteroid extract",
    "description": "Load the previous day's asteroids, daily at 06:00 once the day is complete",
    "schedule": {"cron": "0 6 * * *", "timezone": "UTC"},
    "target": {
        "type": "dagster",
        "base_url": "https://etl.example.com",
        "repository_location_name": "dagster_etl",
        "job_name": "asteroid_job",
        "run_config": {"ops": {"asteroids": {"config": {"date": "{{ ds }}"}}}},
    },
    "wait": {"poll_interval_seconds": 30, "timeout_seconds": 7200},
    "ttl_seconds": 21600,
}

asteroid_trigger = build_trigrun_job(ASTEROIDS)
date_range_schedule = build_trigrun_schedule(ASTEROIDS, job=asteroid_trigger,
                                             name="date_range_schedule")


# The same by hand, for those who want their own op: the resource does the work.
class RefreshConfig(dg.Config):
    scheduled_time: str


@dg.op
def refresh_asteroid_report(context: dg.OpExecutionContext, config: RefreshConfig,
                            trigrun: TrigRunResource) -> None:
    spec = {"name": "Asteroid report", "request": {
        "url": "https://reports.example.com/refresh", "body": {"date": "{{ ds }}"}}}
    result, _ = trigrun.fire_and_wait(
        spec, context=context, scheduled_time=datetime.fromisoformat(config.scheduled_time))
    if not result.ok:
        raise dg.Failure(description=result.error, metadata=trigger_metadata(result))
    context.add_output_metadata(trigger_metadata(result))


@dg.job
def asteroid_report_job() -> None:
    refresh_asteroid_report()


@dg.schedule(job=asteroid_report_job, cron_schedule="30 6 * * *", execution_timezone="UTC")
def asteroid_report_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=scheduled.isoformat(),
        run_config={"ops": {"refresh_asteroid_report": {
            "config": {"scheduled_time": scheduled.isoformat()}}}},
    )


def lesson_defs(resource: TrigRunResource) -> dg.Definitions:
    return dg.Definitions(
        jobs=[asteroid_trigger, asteroid_report_job],
        schedules=[date_range_schedule, asteroid_report_schedule],
        resources={"trigrun": resource},
    )
