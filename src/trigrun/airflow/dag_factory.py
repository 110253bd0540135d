"""``dags_from_specs``: one Airflow DAG per job of a jobs file (trigrun as a backup scheduler).

In a file of the DAGs folder::

    from trigrun.airflow import dags_from_specs

    globals().update(dags_from_specs("/opt/airflow/jobs/jobs.yaml", trigrun_conn_id="prod"))

(The DAGs are built as context managers, so Airflow 3 registers them even without the
``globals().update``; keeping it makes them importable by name.)

Each enabled job becomes DAG ``<prefix><job slug>`` with one ``TrigRunOperator`` task
(``trigger``):

- ``kind: cron``: ``CronTriggerTimetable(cron, timezone=<job timezone>)``. Airflow computes the
  ticks, so DST is Airflow's (a daily 01:30 in America/New_York fires once on the autumn change;
  02:30 fires at 03:30 on the spring one), and ``trigrun next`` previews the same.
- ``kind: once``: ``@once`` starting at ``schedule.at``; ``kind: manual``: no schedule.
- The task emits the job's Airflow asset on success (``job_asset(job name)``;
  ``emit_assets=False`` turns it off), runs in the pool named by the job's ``queue``, and
  delays the fire by the job's ``delay_seconds`` (deferring on a timer when deferrable).
- ``max_active_runs=1``, ``catchup=False``, tags ``trigrun`` + the job's tags, the job's
  ``owner``, its description; a run's logical date is the tick, which keys exactly-once.
- Disabled jobs get no DAG (``include_disabled=True`` makes them paused DAGs instead).
- ``trigrun_conn_id`` contributes what the ``TrigRunOperator`` takes from it: auth and headers
  to jobs that have none, and its host as the ``base_url`` of a short-form target that names
  none (so one file can serve several environments, each with its own connection). Such a
  job is checked at parse time with a placeholder host; ``trigrun validate`` (no Airflow, no
  connection) still asks for the ``base_url``.

Parsing is fast and offline: the file is read and validated once per (path, mtime, size) per
process, and building a DAG touches no connection, variable or network. A bad spec raises
``trigrun.SpecError`` naming the file, the job and the field, so the DAG file shows up as an
import error with that message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ._compat import CronTriggerTimetable, conf  # first: a clear ImportError without Airflow

# isort: split
from airflow.sdk import DAG

from .. import JobSpec, SpecError, load_jobs
from .._loader import gc_paused, parse_jobs, read_file
from ._spec import PLACEHOLDER_BASE_URL, spec_to_dict
from .operators import TrigRunOperator

DEFAULT_START = datetime(2024, 1, 1)
TASK_ID = "trigger"

_cache: dict[str, tuple[tuple[int, int], list[JobSpec]]] = {}
_conn_cache: dict[str, tuple[tuple[int, int], list[tuple[JobSpec, dict[str, Any] | None]]]] = {}
_lock = threading.Lock()


def load_specs(path: str | os.PathLike[str]) -> list[JobSpec]:
    """``trigrun.load_jobs``, cached per process until the file's mtime or size changes."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the jobs file ({exc.strerror})") from None
    stamp = (st.st_mtime_ns, st.st_size)
    key = str(p.resolve())
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    specs = load_jobs(p)
    with _lock:
        _cache[key] = (stamp, specs)
    return specs


def _needs_host(item: Any) -> bool:
    """A short-form target without ``base_url``: the connection's host completes it."""
    target = item.get("target") if isinstance(item, Mapping) else None
    return isinstance(target, Mapping) and not target.get("base_url") and \
        target.get("type") not in (None, "webhook")


def load_specs_for_connection(path: str | os.PathLike[str]
                              ) -> list[tuple[JobSpec, dict[str, Any] | None]]:
    """The jobs of a file used with a connection: each as a JobSpec, and, for a short-form
    target without ``base_url``, the spec dict the operator completes from the connection at
    run time (validated here with a placeholder host, so errors still name file, job, field).
    Cached like ``load_specs``."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read the jobs file ({exc.strerror})") from None
    stamp = (st.st_mtime_ns, st.st_size)
    key = "conn:" + str(p.resolve())
    with _lock:
        hit = _conn_cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    data = read_file(p)
    if data is None:
        raise SpecError(f"{p}: the file is empty; add at least one job")
    wrapped = isinstance(data, Mapping) and "jobs" in data and "name" not in data
    items = data["jobs"] if wrapped else data
    if not isinstance(items, list):
        items = [items]
    missing = [_needs_host(item) for item in items]
    filled = [{**item, "target": {**item["target"], "base_url": PLACEHOLDER_BASE_URL}}
              if m else item for item, m in zip(items, missing, strict=True)]
    specs = parse_jobs({**data, "jobs": filled} if wrapped else filled, source=str(p))
    out: list[tuple[JobSpec, dict[str, Any] | None]] = []
    for spec, m in zip(specs, missing, strict=True):
        raw: dict[str, Any] | None = None
        if m:
            raw = spec_to_dict(spec)
            raw["target"] = {k: v for k, v in raw["target"].items() if k != "base_url"}
        out.append((spec, raw))
    with _lock:
        _conn_cache[key] = (stamp, out)
    return out


def queue_pools(path: str | os.PathLike[str]) -> dict[str, int]:
    """The Airflow pools the jobs of a file run in: ``{queue name: slots}``, slots being the
    queue's ``concurrency_limit`` (``-1``, Airflow's unlimited pool, when it has none). Airflow
    cannot create pools while a DAG file is parsed: create them when deploying, e.g.
    ``airflow pools set <name> <slots> "trigrun queue"`` for each."""
    pools: dict[str, int] = {}
    for spec in load_specs(path):
        if spec.queue is not None and spec.queue.name not in pools:
            pools[spec.queue.name] = spec.queue.concurrency_limit or -1
    return pools


def _schedule(spec: JobSpec, start_date: datetime | None) -> tuple[Any, datetime]:
    tz = ZoneInfo(spec.schedule.timezone if spec.schedule else "UTC")
    start = start_date or DEFAULT_START.replace(tzinfo=tz)
    kind = spec.effective_kind
    if kind == "cron":
        assert spec.schedule is not None
        assert spec.schedule.cron is not None
        return CronTriggerTimetable(spec.schedule.cron, timezone=spec.schedule.timezone), start
    if kind == "once":
        assert spec.schedule is not None
        assert spec.schedule.at is not None
        at = spec.schedule.at
        return "@once", at if at.tzinfo else at.replace(tzinfo=tz)
    return None, start


def _doc(spec: JobSpec, path: Path) -> str:
    when = "manual"
    if spec.schedule is not None and spec.schedule.cron:
        when = f"`{spec.schedule.cron}` ({spec.schedule.timezone})"
    elif spec.schedule is not None and spec.schedule.at:
        when = f"once at {spec.schedule.at.isoformat()}"
    return (f"TrigRun job **{spec.name}** from `{path}`.\n\n"
            f"- target: `{spec.target_name}`\n- schedule: {when}\n"
            f"- waits for the run: {'yes' if spec.waits else 'no'}\n")


@gc_paused()
def dags_from_specs(
    path: str | os.PathLike[str],
    *,
    trigrun_conn_id: str | None = None,
    dag_id_prefix: str = "trigrun_",
    tags: Sequence[str] = (),
    default_args: Mapping[str, Any] | None = None,
    start_date: datetime | None = None,
    deferrable: bool | None = None,
    wait_for_completion: bool | None = None,
    include_disabled: bool = False,
    emit_assets: bool = True,
    operator_kwargs: Mapping[str, Any] | None = None,
    **dag_kwargs: Any,
) -> dict[str, DAG]:
    """Build one DAG per job of the jobs file at ``path``; returns ``{dag_id: DAG}``.

    :param trigrun_conn_id: ``trigrun`` connection for every task (base URL, auth, headers).
    :param dag_id_prefix: prepended to each job's slug to make its DAG id.
    :param tags: extra tags for every DAG (``trigrun`` and the job's tags are always there).
    :param default_args: Airflow default args for every task; the job's ``owner`` wins.
    :param start_date: default: 2024-01-01 in the job's time zone (catchup is off).
    :param deferrable, wait_for_completion: passed to every ``TrigRunOperator``.
    :param emit_assets: each job's task emits the job's asset (``job_asset(job name)``) when
        it succeeds, so other DAGs can be scheduled on it.
    :param operator_kwargs: more ``TrigRunOperator``/``BaseOperator`` arguments for every task.
    :param dag_kwargs: more ``DAG`` arguments for every DAG.
    """
    p = Path(path)
    # With a connection, a short-form target may leave base_url to it, as with the operator.
    jobs = load_specs_for_connection(p) if trigrun_conn_id else [(s, None) for s in load_specs(p)]
    dags: dict[str, DAG] = {}
    owners: dict[str, str] = {}
    op_kwargs = dict(operator_kwargs or {})
    if deferrable is not None:
        op_kwargs["deferrable"] = deferrable
    if wait_for_completion is not None:
        op_kwargs["wait_for_completion"] = wait_for_completion
    op_kwargs.setdefault("emit_asset", emit_assets)
    # DAG() reads these defaults from the Airflow config for every DAG (a third of a DAG's
    # construction time); one read per file gives every DAG the same values, faster.
    config_defaults = {
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint(
            "core", "max_consecutive_failed_dag_runs_per_dag"),
        "disable_bundle_versioning": conf.getboolean("dag_processor",
                                                     "disable_bundle_versioning"),
    }
    dag_args = {**config_defaults, **dag_kwargs}
    for spec, raw in jobs:
        if not spec.enabled and not include_disabled:
            continue
        dag_id = f"{dag_id_prefix}{spec.slug}"
        if dag_id in dags:
            raise SpecError(f"{p}: jobs {owners[dag_id]!r} and {spec.name!r} both become DAG "
                            f"{dag_id!r}; rename one of them")
        owners[dag_id] = spec.name
        try:
            schedule, start = _schedule(spec, start_date)
            task_args = {**op_kwargs}
            if spec.owner:  # an operator argument wins over default_args
                task_args["owner"] = spec.owner
            with DAG(
                dag_id=dag_id,
                schedule=schedule,
                start_date=start,
                catchup=False,
                max_active_runs=1,
                tags=sorted({"trigrun", *spec.tags, *tags}),
                description=(spec.description or f"TrigRun job {spec.name!r}")[:1000],
                default_args=dict(default_args or {}),
                doc_md=_doc(spec, p),
                is_paused_upon_creation=True if not spec.enabled else None,
                **dag_args,
            ) as dag:
                TrigRunOperator(task_id=TASK_ID, spec=raw if raw is not None else spec,
                                trigrun_conn_id=trigrun_conn_id,
                                **task_args)
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"{p}: job {spec.name!r}: cannot build its DAG {dag_id!r}: "
                            f"{type(exc).__name__}: {exc}") from exc
        dags[dag_id] = dag
    return dags
