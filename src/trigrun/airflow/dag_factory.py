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
- A jobs file is complete on its own (``trigrun validate`` checks it without Airflow), so
  ``trigrun_conn_id`` contributes auth and headers to jobs that have none, not base URLs.

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
from .._loader import gc_paused
from .operators import TrigRunOperator

DEFAULT_START = datetime(2024, 1, 1)
TASK_ID = "trigger"

_cache: dict[str, tuple[tuple[int, int], list[JobSpec]]] = {}
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
    specs = load_specs(p)
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
    for spec in specs:
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
                TrigRunOperator(task_id=TASK_ID, spec=spec, trigrun_conn_id=trigrun_conn_id,
                                **task_args)
        except SpecError:
            raise
        except Exception as exc:
            raise SpecError(f"{p}: job {spec.name!r}: cannot build its DAG {dag_id!r}: "
                            f"{type(exc).__name__}: {exc}") from exc
        dags[dag_id] = dag
    return dags
