"""Jobs, schedules and whole ``Definitions`` built from job specs, with no network call."""

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import dagster as dg

# Not exported by name: define_asset_job returns it (Dagster 1.13).
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from pydantic import Field

from .._exceptions import SpecError
from .._loader import gc_paused, load_jobs
from .._models import JobSpec
from .._schedule import parse_iso_time
from ._metadata import (
    PHASE,
    TRACK,
    asset_key_for,
    headline,
    run_metadata,
    trigger_metadata,
)
from ._partitions import (
    DAGSTER_SCHEDULED_TAG,
    PartitionsArg,
    PartitionTime,
    partition_fire,
    partition_time_of,
    partitioned_schedule,
    partitions_for,
)
from ._resource import RESOURCE_KEY, TrigRunResource, as_spec
from ._sensor import build_trigrun_sensor

WaitIn = Literal["op", "sensor"]
AssetForm = Literal["executable", "external"]
AnyJob = dg.JobDefinition | UnresolvedAssetJobDefinition
OP_TAG = "trigrun/op"
JOB_TAG = "trigrun/job"
RUN_ID_TAG = "trigrun/run_id"
SCHEDULED_TAG = "trigrun/scheduled_time"
_DAGSTER_SCHEDULED_TAG = DAGSTER_SCHEDULED_TAG
_ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
           dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
           dg.DagsterRunStatus.CANCELING]


class TrigRunConfig(dg.Config):
    """Run config of a trigrun op. Schedules fill ``scheduled_time``; manual runs may leave it."""

    scheduled_time: str | None = Field(
        default=None,
        description="ISO 8601 time with offset this fire stands for: templates ({{ ds }}) and "
                    "the idempotency key come from it. Default: the schedule's tick, else the "
                    "creation time of the (root) Dagster run, so op retries and re-executions "
                    "reuse one downstream run.")
    params: dict[str, Any] = Field(default={}, description="Values for {{ params.x }}, over "
                                   "the job's own params.")
    wait: bool | None = Field(default=None, description="Wait for the downstream run "
                              "(default: as the job spec says).")


_CONFIG_SCHEMA: list[Any] = []  # TrigRunConfig's Dagster schema, once made


def _config_schema() -> Any:
    """``TrigRunConfig``'s config schema, inferred once for every op. An op that takes the
    config class as a parameter has Dagster infer the schema again for each op (a quarter of
    ``build_trigrun_definitions`` on 1,000 jobs); the ops take this schema instead and build
    the config object from the op's config when they run. Same schema, same run config."""
    if not _CONFIG_SCHEMA:
        # The fields as a dict: multi_asset takes only a mapping.
        _CONFIG_SCHEMA.append(TrigRunConfig.to_fields_dict())
    return _CONFIG_SCHEMA[0]


def _config_of(context: dg.OpExecutionContext) -> TrigRunConfig:
    return TrigRunConfig(**(context.op_config or {}))


def op_name_for(job_name: str) -> str:
    """The name of the one op in a trigrun job (run config goes to ops.<this>.config)."""
    return f"{job_name}__fire"


def _tz(spec: JobSpec) -> ZoneInfo:
    return spec.schedule.tzinfo if spec.schedule is not None else ZoneInfo("UTC")


def _parse_time(value: str, spec: JobSpec, where: str) -> datetime:
    parsed = parse_iso_time(value, f"job {spec.name!r}: {where}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_tz(spec))


def _scheduled_time(context: dg.OpExecutionContext, configured: str | None,
                    spec: JobSpec) -> datetime:
    if configured:
        return _parse_time(configured, spec, f"run config ops.{context.op.name}.config."
                                             "scheduled_time")
    run = context.dagster_run
    tagged = run.tags.get(_DAGSTER_SCHEDULED_TAG) or run.tags.get(SCHEDULED_TAG)
    if tagged:  # Dagster's tag is in UTC; {{ ds }} is the date in the schedule's zone
        return _parse_time(tagged, spec, "the run's scheduled time tag").astimezone(_tz(spec))
    # A manual run: its (root) run's creation time is fixed across op retries and
    # re-executions, so the idempotency key, and thus the downstream run, stays the same.
    record = context.instance.get_run_record_by_id(run.root_run_id or run.run_id)
    created = record.create_timestamp if record is not None else datetime.now(timezone.utc)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    return created.astimezone(_tz(spec)).replace(microsecond=0)


class _Fired:
    """What the shared body of a trigrun op or asset did: the metadata to record and, when the
    downstream run was waited for, how it ended."""

    def __init__(self, value: dict[str, Any], md: dict[str, dg.MetadataValue], phase: str,
                 track: str, ended: dict[str, Any] | None) -> None:
        self.value, self.md, self.phase, self.track, self.ended = value, md, phase, track, ended


def _fire(context: dg.OpExecutionContext, config: TrigRunConfig, spec: JobSpec,
          resource_key: str, wait_in: WaitIn, edge: PartitionTime = "start") -> _Fired:
    """Fire (and wait, where the op waits); a failed fire or run raises ``dg.Failure``."""
    started = time.monotonic()
    resource: TrigRunResource = getattr(context.resources, resource_key)
    scheduled = _scheduled_time(context, config.scheduled_time, spec)
    names: dict[str, Any] = {}
    part_key: str | None = None
    part = partition_fire(context, spec, edge, scheduled)
    if part is not None:
        spec, names = part.spec, part.names
        part_key = str(names["partition_key"])
        # A scheduled_time given in run config still wins: it is asked for by name.
        if part.scheduled is not None and not config.scheduled_time:
            scheduled = part.scheduled
    waits = spec.waits if config.wait is None else config.wait
    track = ("op" if wait_in == "op" else "sensor") if waits else "none"
    key = asset_key_for(spec)
    with resource.engine(context) as engine:
        result = resource.fire(spec, context=context, scheduled_time=scheduled,
                               params=config.params, engine=engine, template_vars=names)
        md = trigger_metadata(result)
        if not result.ok:
            raise dg.Failure(description=result.error or f"job {spec.name!r}: trigger failed",
                             metadata=headline(md, started))
        if result.run_id is not None:
            context.instance.add_run_tags(context.run_id, {RUN_ID_TAG: result.run_id[:255]})
        if result.skipped:
            context.log_event(dg.AssetObservation(asset_key=key, metadata={**md, PHASE: "skipped"},
                                                    partition=part_key))
            return _Fired({"trigger": result.to_log(), "run": None}, md, "skipped", track, None)
        fired: dict[str, Any] = {**md, PHASE: "fired", TRACK: track,
                                 "scheduled_time_local": scheduled.isoformat()}
        if "partition_key" in names:
            fired["partition_key"] = names["partition_key"]
        if config.params:
            fired["params"] = dg.MetadataValue.json(config.params)
        context.log_event(dg.AssetObservation(asset_key=key, metadata=fired, partition=part_key))
        if track != "op":
            return _Fired({"trigger": result.to_log(), "run": None}, headline(md, started),
                          "fired", track, None)
        if result.run_id is None:
            raise dg.Failure(description=f"job {spec.name!r}: the target returned no run id to "
                             "wait on; set wait.enabled: false or the webhook's "
                             "wait.run_id_path", metadata=headline(md, started))
    # The wait joins the process's shared engine (batched with concurrent waits on the target).
    run = resource.wait(result, context=context)
    md.update(run_metadata(run))
    md = headline(md, started)
    ended = {**md, PHASE: "ended"}
    if not run.ok:
        context.log_event(dg.AssetObservation(asset_key=key, metadata=ended,
                                                    partition=part_key))
        raise dg.Failure(description=run.message, metadata=md)
    return _Fired({"trigger": result.to_log(), "run": run.to_log()}, md, "ended", track, ended)


def _run_op(context: dg.OpExecutionContext, config: TrigRunConfig, spec: JobSpec,
            resource_key: str, wait_in: WaitIn) -> dg.Output[dict[str, Any]]:
    done = _fire(context, config, spec, resource_key, wait_in)
    if done.ended is not None:
        context.log_event(dg.AssetMaterialization(asset_key=asset_key_for(spec),
                                                  metadata=done.ended))
    return dg.Output(done.value, metadata=done.md)


def _pool(spec: JobSpec) -> str | None:
    return spec.queue.name if spec.queue is not None else None


def build_trigrun_job(spec: JobSpec | Mapping[str, Any], *, name: str | None = None,
                      wait_in: WaitIn = "op", resource_key: str = RESOURCE_KEY,
                      executor_def: dg.ExecutorDefinition | None = None,
                      tags: Mapping[str, str] | None = None,
                      retry_policy: dg.RetryPolicy | None = None) -> dg.JobDefinition:
    """A one-op job that fires the spec's trigger and, when the spec waits, waits in the op
    (``wait_in="op"``, logging polls; a terminated run cancels the downstream run) or leaves
    the wait to ``build_trigrun_sensor`` (``wait_in="sensor"``, no run worker held).

    Results become metadata (on the output, on the failure, and on asset ``trigrun/<slug>``).
    """
    spec = as_spec(spec)
    if wait_in not in ("op", "sensor"):
        raise ValueError(f"wait_in must be 'op' or 'sensor', not {wait_in!r}")
    job_name = name or spec.slug
    op_name = op_name_for(job_name)

    @dg.op(name=op_name, required_resource_keys={resource_key}, retry_policy=retry_policy,
           pool=_pool(spec),
           description=f"Fire trigrun job {spec.name!r}"
                       + (" and wait for its run" if spec.waits and wait_in == "op" else ""),
           tags={"kind": "trigrun"}, config_schema=_config_schema())
    def _fire(context: dg.OpExecutionContext) -> dg.Output[dict[str, Any]]:
        return _run_op(context, _config_of(context), spec, resource_key, wait_in)

    job_tags = {JOB_TAG: spec.name[:255], OP_TAG: op_name, **(tags or {})}

    @dg.job(name=job_name, description=spec.description or f"trigrun job {spec.name!r}",
            tags=job_tags, executor_def=executor_def or dg.in_process_executor)
    def _job() -> None:
        _fire()

    return _job


def build_trigrun_asset(spec: JobSpec | Mapping[str, Any], *, name: str | None = None,
                        wait_in: WaitIn = "op", resource_key: str = RESOURCE_KEY,
                        deps: Sequence[dg.AssetKey] = (), group_name: str = "trigrun",
                        retry_policy: dg.RetryPolicy | None = None,
                        partitions_def: PartitionsArg = None,
                        partition_time: PartitionTime | None = None) -> dg.AssetsDefinition:
    """The job's asset ``trigrun/<slug>``, executable: materializing it fires the trigger and,
    where the op waits, waits for the downstream run. Its materialization's metadata starts
    with the run URL, state and duration; a downstream run that does not succeed fails the
    materialization (``dg.Failure`` with the run's metadata). With ``wait_in="sensor"`` (or a
    job that does not wait on a run it can see) the step only fires: the completion sensor
    records the materialization when the run ends. A skipped fire materializes nothing.

    The op is named ``op_name_for(name or slug)``, as in ``build_trigrun_job``, so run config
    (``ops.<op>.config``) is the same for both forms. ``deps``: upstream asset keys, shown as
    lineage (and run first when both are selected in one run).

    ``partitions_def`` (default: the spec's ``partitions:``): one downstream run per partition
    (docs/dagster.md). For time windows the window's ``partition_time`` edge (default
    ``start``, or the spec's ``partitions.time``) is the scheduled time of the fire, so a
    partition fires once however often it is materialized; templates also get
    ``{{ partition_key }}``, ``{{ data_interval_start }}`` and ``{{ data_interval_end }}``.
    A static partition's key is ``{{ partition_key }}`` and part of its idempotency key.
    Backfills run one partition per run."""
    spec = as_spec(spec)
    if wait_in not in ("op", "sensor"):
        raise ValueError(f"wait_in must be 'op' or 'sensor', not {wait_in!r}")
    job_name = name or spec.slug
    key = asset_key_for(spec)
    parts = partitions_for(spec, partitions_def)
    edge = partition_time_of(spec, partition_time)
    asset_spec = dg.AssetSpec(
        key, deps=list(deps), group_name=group_name, kinds={"trigrun"},
        description=spec.description or f"Runs started by trigrun job {spec.name!r}",
        metadata={"trigrun_job": spec.name},
        # Not every step materializes: a skipped fire, or one whose end the sensor records.
        skippable=True, partitions_def=parts)

    @dg.multi_asset(name=op_name_for(job_name), specs=[asset_spec],
                    required_resource_keys={resource_key}, retry_policy=retry_policy,
                    pool=_pool(spec), op_tags={"kind": "trigrun"},
                    config_schema=_config_schema(),
                    # One partition, one run, one downstream run: never a range in one step.
                    backfill_policy=dg.BackfillPolicy.multi_run(1) if parts else None)
    def _asset(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[Any]]:
        op_context = context.op_execution_context
        done = _fire(op_context, _config_of(op_context), spec, resource_key, wait_in, edge)
        if done.phase == "ended":
            yield dg.MaterializeResult(asset_key=key, metadata=done.md)
        elif done.phase == "fired" and done.track == "none":
            # Nothing to wait on: the fire is the whole of the job.
            md = dict(done.md)
            head = {k: md.pop(k) for k in ("run_url",) if k in md}
            yield dg.MaterializeResult(asset_key=key, metadata={
                **head, "state": dg.MetadataValue.text("fired"), **md})

    return _asset


def build_trigrun_asset_job(spec: JobSpec | Mapping[str, Any], *, name: str | None = None,
                            tags: Mapping[str, str] | None = None,
                            executor_def: dg.ExecutorDefinition | None = None,
                            partitions_def: PartitionsArg = None,
                            ) -> UnresolvedAssetJobDefinition:
    """The job that materializes the job's asset (``build_trigrun_asset``): what its schedule
    runs, named like ``build_trigrun_job``'s job. Give the asset to ``Definitions`` too.
    ``partitions_def``: as the asset's (default: the spec's ``partitions:``); a partitioned
    job takes ``build_schedule_from_partitioned_job`` and backfills."""
    spec = as_spec(spec)
    job_name = name or spec.slug
    return dg.define_asset_job(
        partitions_def=partitions_for(spec, partitions_def),
        name=job_name, selection=dg.AssetSelection.assets(asset_key_for(spec)),
        description=spec.description or f"trigrun job {spec.name!r}",
        tags={JOB_TAG: spec.name[:255], OP_TAG: op_name_for(job_name), **(tags or {})},
        executor_def=executor_def or dg.in_process_executor)


def schedule_request(spec: JobSpec, job_name: str, op_name: str,
                     context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """What one tick of a trigrun schedule asks for. Dagster computes the tick (DST included);
    this only turns it into run config, a run key and, when due, a skip reason."""
    tz = _tz(spec)
    tick = context.scheduled_execution_time
    if tick is None:
        tick = datetime.now(timezone.utc).replace(microsecond=0)
    elif tick.tzinfo is None:
        tick = tick.replace(tzinfo=tz)
    tick = tick.astimezone(tz)
    stamp = tick.isoformat()
    if spec.ttl_seconds is not None:
        late = (datetime.now(timezone.utc) - tick).total_seconds()
        if late > spec.ttl_seconds:
            return dg.SkipReason(f"trigrun job {spec.name!r}: tick {stamp} is {late:.0f}s late, "
                                 f"more than ttl_seconds={spec.ttl_seconds:g}")
    if spec.overlap == "skip":
        active = context.instance.get_runs(
            dg.RunsFilter(job_name=job_name, statuses=_ACTIVE), limit=1)
        if active:
            return dg.SkipReason(f"trigrun job {spec.name!r}: overlap is 'skip' and run "
                                 f"{active[0].run_id} is still {active[0].status.value}")
    return dg.RunRequest(
        run_key=stamp,
        run_config={"ops": {op_name: {"config": {"scheduled_time": stamp}}}},
        tags={SCHEDULED_TAG: stamp},
    )


def build_trigrun_schedule(spec: JobSpec | Mapping[str, Any], *,
                           job: AnyJob | None = None, name: str | None = None,
                           default_status: dg.DefaultScheduleStatus | None = None,
                           wait_in: WaitIn = "op",
                           resource_key: str = RESOURCE_KEY) -> dg.ScheduleDefinition:
    """The spec's cron in its time zone as a Dagster schedule. Each tick's run config carries
    the tick (``scheduled_execution_time``) so ``{{ ds }}`` renders the scheduled date;
    ``run_key`` is the tick; a TTL already passed, or ``overlap: skip`` with a run of this job
    still going, gives a ``SkipReason``. A disabled spec's schedule starts stopped."""
    spec = as_spec(spec)
    if spec.effective_kind != "cron" or spec.schedule is None or spec.schedule.cron is None:
        raise SpecError(f"job {spec.name!r}: a schedule needs kind 'cron' with schedule.cron; "
                        f"this job is {spec.effective_kind!r} (build only its job)")
    if job is None:
        job = build_trigrun_job(spec, wait_in=wait_in, resource_key=resource_key)
    op_name = job.tags.get(OP_TAG) or op_name_for(job.name)
    job_name = job.name
    status = default_status or dg.DefaultScheduleStatus.STOPPED
    if not spec.enabled:
        status = dg.DefaultScheduleStatus.STOPPED

    @dg.schedule(name=name or f"{job.name}_schedule", cron_schedule=spec.schedule.cron,
                 job=job, execution_timezone=spec.schedule.timezone, default_status=status,
                 description=f"trigrun job {spec.name!r}: {spec.schedule.cron} "
                             f"({spec.schedule.timezone})")
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        return schedule_request(spec, job_name, op_name, context)

    return _schedule


def _specs_from(source: str | Path | JobSpec | Sequence[JobSpec | Mapping[str, Any]]) -> list[JobSpec]:
    if isinstance(source, (str, Path)):
        return load_jobs(source)
    if isinstance(source, JobSpec):
        return [source]
    return [as_spec(s) for s in source]


def _deps_by_slug(specs: Sequence[JobSpec],
                  deps: Mapping[str, Sequence[str]] | None) -> dict[str, list[dg.AssetKey]]:
    """``deps`` (job name or slug -> upstream job names or slugs) as asset keys per slug."""
    by_name: dict[str, JobSpec] = {}
    for spec in specs:
        by_name[spec.name] = by_name[spec.slug] = spec
    out: dict[str, list[dg.AssetKey]] = {}
    for job, upstream in (deps or {}).items():
        if job not in by_name:
            raise SpecError(f"deps: job {job!r} is not in these job specs; give a job's name "
                            f"or slug, one of {sorted(s.name for s in specs)}")
        if isinstance(upstream, str):
            raise SpecError(f"deps.{job}: give a list of job names, e.g. [{upstream!r}]")
        keys = out.setdefault(by_name[job].slug, [])
        for name in upstream:
            if name not in by_name:
                raise SpecError(f"deps.{job}: job {name!r} is not in these job specs; give a "
                                f"job's name or slug, one of {sorted(s.name for s in specs)}")
            if by_name[name] is by_name[job]:
                raise SpecError(f"deps.{job}: a job cannot depend on itself")
            keys.append(asset_key_for(by_name[name]))
    return out


@gc_paused()
def build_trigrun_definitions(
    source: str | Path | JobSpec | Sequence[JobSpec | Mapping[str, Any]], *,
    resource: TrigRunResource | None = None, resource_key: str = RESOURCE_KEY,
    wait_in: WaitIn = "op", default_status: dg.DefaultScheduleStatus | None = None,
    sensor_name: str = "trigrun_completion_sensor",
    sensor_interval_seconds: int | None = None,
    assets: AssetForm = "executable",
    deps: Mapping[str, Sequence[str]] | None = None,
    partitions_def: PartitionsArg = None,
    partition_time: PartitionTime | None = None,
) -> dg.Definitions:
    """Per job spec in a jobs file (or list): an executable asset ``trigrun/<slug>`` and the
    job ``<slug>`` that materializes it (Materialize in the UI fires the job), a schedule per
    cron job running that job; the resource under ``resource_key``; and, with
    ``wait_in="sensor"``, the completion sensor. Reads the file only: no network call.

    ``assets="external"``: the earlier form, a one-op job per spec (``build_trigrun_job``)
    and an external asset that only records the runs (no Materialize button), for code that
    selects ops rather than assets. ``deps``: job name -> the job names it comes after, shown
    as asset lineage (executable form only).

    ``partitions_def``: one ``PartitionsDefinition`` for every job, or job name -> one;
    jobs not given one use their spec's ``partitions:`` (docs/dagster.md). A partitioned
    cron job's schedule is ``build_schedule_from_partitioned_job`` (time windows) or one run
    per key at each tick (static keys)."""
    specs = _specs_from(source)
    if assets not in ("executable", "external"):
        raise ValueError(f"assets must be 'executable' or 'external', not {assets!r}")
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.slug in seen:
            raise SpecError(f"jobs {seen[spec.slug]!r} and {spec.name!r} both become Dagster job "
                            f"{spec.slug!r}; rename one")
        seen[spec.slug] = spec.name
    lineage = _deps_by_slug(specs, deps)
    if lineage and assets == "external":
        raise SpecError("deps: asset dependencies need the executable assets; drop "
                        "assets='external' or the deps")
    jobs: list[AnyJob] = []
    schedules: list[Any] = []
    asset_defs: list[dg.AssetsDefinition | dg.AssetSpec] = []
    for spec in specs:
        job: AnyJob
        parts = partitions_for(spec, partitions_def)
        if parts is not None and assets == "external":
            raise SpecError(f"job {spec.name!r}: partitions need the executable assets; drop "
                            "assets='external' or the partitions")
        if assets == "executable":
            asset_defs.append(build_trigrun_asset(spec, wait_in=wait_in, resource_key=resource_key,
                                                  deps=lineage.get(spec.slug, ()),
                                                  partitions_def=parts,
                                                  partition_time=partition_time))
            job = build_trigrun_asset_job(spec, partitions_def=parts)
        else:
            job = build_trigrun_job(spec, wait_in=wait_in, resource_key=resource_key)
            asset_defs.append(dg.AssetSpec(
                asset_key_for(spec), description=f"Runs started by trigrun job {spec.name!r}",
                group_name="trigrun", kinds={"trigrun"}, metadata={"trigrun_job": spec.name}))
        jobs.append(job)
        if spec.effective_kind == "cron":
            if parts is not None:
                status = default_status or dg.DefaultScheduleStatus.STOPPED
                schedules.append(partitioned_schedule(
                    spec, job, parts, status if spec.enabled else dg.DefaultScheduleStatus.STOPPED))
            else:
                schedules.append(build_trigrun_schedule(spec, job=job,
                                                        default_status=default_status))
    sensors: list[dg.SensorDefinition] = []
    tracked = [s for s in specs if s.waits]
    if wait_in == "sensor" and tracked:
        sensor = build_trigrun_sensor(tracked, name=sensor_name, resource_key=resource_key,
                                      minimum_interval_seconds=sensor_interval_seconds)
        sensors.append(sensor)
        # Its report job belongs in the definitions themselves (Dagster 1.11+ resolves a job
        # that only a sensor names with a warning, and will stop doing so).
        jobs.extend(j for j in sensor.jobs if isinstance(j, dg.JobDefinition))
    return dg.Definitions(assets=asset_defs, jobs=jobs, schedules=schedules, sensors=sensors,
                          resources={resource_key: resource or TrigRunResource()})
