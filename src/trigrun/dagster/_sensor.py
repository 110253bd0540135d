"""The completion sensor: waits on fired downstream runs without holding a run worker.

The Dagster counterpart of a deferrable trigger. A job built with ``wait_in="sensor"`` only
fires and records the downstream run as an ``AssetObservation`` (phase "fired") on asset
``trigrun/<slug>``. Each tick this sensor picks up new fired records, polls every pending run
once (all of them through ``AsyncEngine.poll_many``: one batched status request per target
where its preset batches) and, when a run has ended, reports an ``AssetMaterialization``
(success) or an ``AssetObservation`` (any other end). A run that ended other than in success
also gets a failed Dagster run of the sensor's report job (``<sensor>__downstream_failed``),
so run-failure sensors and alerts see it. Pending runs live in the cursor.
"""

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import dagster as dg

from .._models import JobSpec
from .._results import RunState
from .._targets import RunStatus
from .._templates import render_spec, template_context
from ._metadata import PHASE, TRACK, asset_key_for, url_value
from ._resource import RESOURCE_KEY, TrigRunResource, as_spec

_BATCH = 100
_T = TypeVar("_T")
# The same tag names as the trigrun jobs' runs (``_factories``), so one filter finds both.
JOB_TAG = "trigrun/job"
RUN_ID_TAG = "trigrun/run_id"
STATE_TAG = "trigrun/state"


class DownstreamEnd(dg.Config):
    """Run config of a report run: how a downstream run ended (all of it already redacted)."""

    job: str
    run_id: str
    state: str
    message: str
    run_url: str | None = None
    raw_status: str | None = None
    scheduled_time: str | None = None
    fired_by_dagster_run: str | None = None
    waited_seconds: float = 0.0


def report_job_name(sensor_name: str) -> str:
    """The job whose failed runs report downstream runs that did not succeed."""
    return f"{sensor_name}__downstream_failed"


def _build_report_job(sensor_name: str) -> dg.JobDefinition:
    @dg.op(name=f"{report_job_name(sensor_name)}__report", tags={"kind": "trigrun"},
           description="Fails with how a downstream run of a trigrun job ended")
    def _report(config: DownstreamEnd) -> None:
        md: dict[str, Any] = {
            "job": dg.MetadataValue.text(config.job),
            "state": dg.MetadataValue.text(config.state),
            "run_id": dg.MetadataValue.text(config.run_id),
            "message": dg.MetadataValue.text(config.message),
            "waited_seconds": dg.MetadataValue.float(config.waited_seconds),
        }
        if config.run_url:
            md["run_url"] = url_value(config.run_url)
        if config.raw_status is not None:
            md["raw_status"] = dg.MetadataValue.text(config.raw_status)
        if config.scheduled_time:
            md["scheduled_time"] = dg.MetadataValue.text(config.scheduled_time)
        if config.fired_by_dagster_run:
            md["fired_by_dagster_run"] = dg.MetadataValue.dagster_run(config.fired_by_dagster_run)
        raise dg.Failure(description=f"trigrun job {config.job!r}: downstream run "
                         f"{config.run_id} ended {config.state}: {config.message}", metadata=md)

    @dg.job(name=report_job_name(sensor_name), executor_def=dg.in_process_executor,
            description=f"A failed run here is a downstream run, waited on by sensor "
                        f"{sensor_name!r}, that ended other than in success.")
    def _job() -> None:
        _report()

    return _job


def _report_request(sensor_name: str, spec: JobSpec, p: Mapping[str, Any], state: RunState,
                    message: str, raw: Any, now: float) -> dg.RunRequest:
    config = {
        "job": spec.name, "run_id": str(p["run_id"]), "state": state.value, "message": message,
        "run_url": str(p["run_url"]) if p.get("run_url") else None,
        "raw_status": None if raw is None else str(raw),
        "scheduled_time": str(p["scheduled_time"]) if p.get("scheduled_time") else None,
        "fired_by_dagster_run": str(p["dagster_run_id"]) if p.get("dagster_run_id") else None,
        "waited_seconds": round(now - float(p["fired_at"]), 1),
    }
    op = f"{report_job_name(sensor_name)}__report"
    return dg.RunRequest(
        # One report per downstream run, even if a tick is evaluated again.
        run_key=f"{spec.slug}:{p['run_id']}",
        job_name=report_job_name(sensor_name),
        run_config={"ops": {op: {"config": config}}},
        tags={JOB_TAG: spec.name[:255], RUN_ID_TAG: str(p["run_id"])[:255],
              STATE_TAG: state.value})


def _value(md: Mapping[str, Any], key: str) -> Any:
    entry = md.get(key)
    return getattr(entry, "value", entry)


def _load(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {"after": {}, "pending": []}
    data: dict[str, Any] = json.loads(cursor)
    data.setdefault("after", {})
    data.setdefault("pending", [])
    return data


def _spec_for_poll(spec: JobSpec, pending: Mapping[str, Any]) -> JobSpec:
    """The spec as it was rendered for the fire, so status calls go where the trigger went."""
    stamp = pending.get("scheduled_time")
    if not stamp:
        return spec
    scheduled = datetime.fromisoformat(stamp)
    extra = {"params": pending.get("params") or {}}
    return render_spec(spec, template_context(spec, scheduled, extra))


def _new_fired(context: dg.SensorEvaluationContext, spec: JobSpec, state: dict[str, Any],
               now: float) -> list[dict[str, Any]]:
    after = state["after"].get(spec.slug)
    key = asset_key_for(spec)
    if after is None:
        # First tick: look at the latest records only, and only at runs still within their wait.
        records = list(reversed(context.instance.fetch_observations(
            key, limit=_BATCH, ascending=False).records))
    else:
        records = list(context.instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after), limit=_BATCH,
            ascending=True).records)
    found: list[dict[str, Any]] = []
    for record in records:
        state["after"][spec.slug] = max(record.storage_id, state["after"].get(spec.slug) or 0)
        obs = record.asset_observation
        md = obs.metadata if obs is not None else {}
        if _value(md, PHASE) != "fired" or _value(md, TRACK) != "sensor":
            continue
        run_id = _value(md, "run_id")
        if not run_id:
            continue
        if after is None and record.timestamp + spec.wait.timeout_seconds < now:
            continue
        found.append({
            "slug": spec.slug, "job": spec.name, "run_id": str(run_id),
            "run_url": _value(md, "run_url"),
            "scheduled_time": _value(md, "scheduled_time_local") or _value(md, "scheduled_time"),
            "params": _value(md, "params") or {},
            "partition": _value(md, "partition_key"),
            "fired_at": record.timestamp, "dagster_run_id": record.run_id, "errors": 0,
        })
    return found


def _ended(spec: JobSpec, p: Mapping[str, Any], state: RunState, message: str,
           raw: Any, now: float) -> dg.AssetMaterialization | dg.AssetObservation:
    md: dict[str, Any] = {
        PHASE: "ended",
        "job": dg.MetadataValue.text(spec.name),
        "state": dg.MetadataValue.text(state.value),
        "run_id": dg.MetadataValue.text(p["run_id"]),
        "message": dg.MetadataValue.text(message),
        "waited_seconds": dg.MetadataValue.float(round(now - float(p["fired_at"]), 1)),
    }
    if p.get("run_url"):
        md["run_url"] = url_value(str(p["run_url"]))
    if raw is not None:
        md["raw_status"] = dg.MetadataValue.text(str(raw))
    if p.get("dagster_run_id"):
        md["fired_by_dagster_run"] = dg.MetadataValue.dagster_run(str(p["dagster_run_id"]))
    if p.get("scheduled_time"):
        md["scheduled_time"] = dg.MetadataValue.text(str(p["scheduled_time"]))
    key = asset_key_for(spec)
    part = p.get("partition")
    if state is RunState.SUCCESS:
        return dg.AssetMaterialization(asset_key=key, metadata=md, partition=part)
    return dg.AssetObservation(asset_key=key, metadata=md, partition=part)


async def _check(resource: TrigRunResource, items: list[tuple[JobSpec, str]],
                 decide: Callable[[Sequence[RunStatus | BaseException]],
                                  list[tuple[JobSpec, str]]]) -> list[bool | BaseException]:
    """One status check of every pending run, in batched requests (one per target and page
    where the preset batches), then the cancels ``decide`` asks for."""
    engine = resource.async_engine()
    try:
        statuses = await engine.poll_many(items)
        cancel = decide(statuses)
        return list(await asyncio.gather(*(engine.cancel(spec, run_id) for spec, run_id in cancel),
                                         return_exceptions=True))
    finally:
        await engine.aclose()


def _run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to its end from sync code: the sensor daemon's thread has no event loop,
    but a tick evaluated from async code (a test, a notebook) runs in one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def evaluate(context: dg.SensorEvaluationContext, specs: Mapping[str, JobSpec],
             resource: TrigRunResource, *,
             sensor_name: str = "trigrun_completion_sensor") -> dg.SensorResult:
    """One tick: collect new fires, poll each pending run once, report the ended ones (a
    run that did not succeed also as a run request of the report job, which fails)."""
    now = time.time()
    state = _load(context.cursor)
    pending: list[dict[str, Any]] = [p for p in state["pending"] if p.get("slug") in specs]
    known = {(p["slug"], p["run_id"]) for p in pending}
    for spec in specs.values():
        for p in _new_fired(context, spec, state, now):
            if (p["slug"], p["run_id"]) not in known:
                known.add((p["slug"], p["run_id"]))
                pending.append(p)
    events: list[dg.AssetMaterialization | dg.AssetObservation] = []
    reports: list[dg.RunRequest] = []
    still: list[dict[str, Any]] = []

    def end(spec: JobSpec, p: Mapping[str, Any], state: RunState, message: str,
            raw: Any) -> None:
        events.append(_ended(spec, p, state, message, raw, now))
        if state is not RunState.SUCCESS:
            context.log.error(f"trigrun: downstream run {p['run_id']} of job {spec.name!r} "
                              f"ended {state.value}: {message}")
            reports.append(_report_request(sensor_name, spec, p, state, message, raw, now))
    if pending:
        polled = [_spec_for_poll(specs[p["slug"]], p) for p in pending]
        timeouts: list[tuple[JobSpec, dict[str, Any], str, JobSpec]] = []

        def decide(statuses: Sequence[RunStatus | BaseException]) -> list[tuple[JobSpec, str]]:
            for p, status, as_polled in zip(pending, statuses, polled, strict=True):
                spec = specs[p["slug"]]
                if isinstance(status, BaseException):
                    status = RunStatus(RunState.UNKNOWN, None, f"status check failed: "
                                       f"{type(status).__name__}: {status}")
                context.log.info(f"trigrun: run {p['run_id']} of job {spec.name!r}: "
                                 f"{status.state.value} ({status.message or status.raw})")
                if status.state is RunState.UNKNOWN:
                    p["errors"] = int(p.get("errors", 0)) + 1
                    if p["errors"] >= spec.wait.max_consecutive_poll_errors:
                        end(spec, p, RunState.UNKNOWN, status.message, status.raw)
                        continue
                elif status.state.terminal:
                    end(spec, p, status.state, status.message, status.raw)
                    continue
                else:
                    p["errors"] = 0
                timeout = resource.wait_timeout_seconds or spec.wait.timeout_seconds
                if now - float(p["fired_at"]) > timeout:
                    timeouts.append((spec, p, f"run {p['run_id']} still going after the "
                                              f"wait's deadline ({timeout:g}s)", as_polled))
                    continue
                still.append(p)
            return [(as_polled, str(p["run_id"])) for spec, p, _, as_polled in timeouts
                    if spec.wait.cancel_on_timeout]

        cancels = iter(_run_async(_check(resource, list(zip(polled, (str(p["run_id"])
                                                                       for p in pending),
                                                               strict=True)), decide)))
        for spec, p, message, _ in timeouts:
            if spec.wait.cancel_on_timeout:
                ok = next(cancels)
                message += "; cancel requested" if ok is True else "; cancel failed"
            end(spec, p, RunState.TIMEOUT, message, None)
    state["pending"] = still
    cursor = json.dumps(state, sort_keys=True, default=str)
    if not events and not still:
        return dg.SensorResult(skip_reason="no downstream runs pending", cursor=cursor)
    return dg.SensorResult(asset_events=events, run_requests=reports, cursor=cursor)


def build_trigrun_sensor(specs: Sequence[JobSpec | Mapping[str, Any]], *,
                         name: str = "trigrun_completion_sensor",
                         resource_key: str = RESOURCE_KEY,
                         minimum_interval_seconds: int | None = None,
                         default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
                         ) -> dg.SensorDefinition:
    """The completion sensor for jobs built with ``wait_in="sensor"``. It runs in the sensor
    daemon, checks each pending downstream run once per tick, in batched requests (default interval: the shortest
    ``wait.poll_interval_seconds``, at least 5 s), enforces ``wait.timeout_seconds`` (and
    ``cancel_on_timeout``), and reports the end as an asset event on ``trigrun/<slug>``.
    A run that ended failed, cancelled, timed out or unknown is also requested as a run of
    the sensor's own job ``<name>__downstream_failed`` (defined with the sensor), which fails
    with the downstream run's end as ``dagster.Failure`` metadata: a failed run, where
    run-failure sensors and alerts look."""
    by_slug = {s.slug: s for s in (as_spec(x) for x in specs)}
    if not by_slug:
        raise ValueError("build_trigrun_sensor needs at least one job spec")
    interval = minimum_interval_seconds or max(
        5, int(min(s.wait.poll_interval_seconds for s in by_slug.values())))

    report_job = _build_report_job(name)

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=default_status,
               required_resource_keys={resource_key}, job=report_job,
               description="Waits on downstream runs fired by trigrun jobs ("
                           + ", ".join(sorted(s.name for s in by_slug.values())) + ")")
    def _sensor(context: dg.SensorEvaluationContext, **resources: Any) -> dg.SensorResult:
        # Called directly (``sensor(build_sensor_context(resources=...))``, Dagster's way to
        # test a sensor), Dagster passes the required resources as keyword arguments too.
        resource = resources.get(resource_key) or getattr(context.resources, resource_key)
        return evaluate(context, by_slug, resource, sensor_name=name)

    return _sensor
