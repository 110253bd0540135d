"""``TrigRunOperator``: fire a job's trigger request from the worker, then (optionally) wait.

How one task try goes:

1. Airflow renders the templated ``spec`` dict with the task context (``ds``, ``logical_date``,
   ``params``, ``var``... plus trigrun's ``scheduled_time`` and ``job``). trigrun does not
   render again (``engine.fire(..., render=False)``), so a template is evaluated once, by
   Airflow, and the rendered-template tab shows what was sent (``secret://`` references only).
2. The ``trigrun`` connection, if any, completes the spec (``hooks``) - at execute time only.
3. Exactly once: the scheduled time is the DAG run's logical date, or ``run_after`` when it has
   none - never the try number - so every try of one scheduled run derives the same idempotency
   key (Airflow target: the same ``dag_run_id``; Prefect: ``idempotency_key``; Dagster: a run
   tag; dbt Cloud: a marker in ``cause``). A retry after the trigger was sent gets 409 (or finds
   the run) and adopts it. On Airflow 3.3+ the run id is also kept in the task's
   ``task_state_store`` (XCom is wiped at every try), so a retry adopts it without sending the
   request at all - which also covers webhooks that ignore ``Idempotency-Key``. Airflow's
   ``ResumableJobMixin`` is not used: it blocks a worker while polling and resubmits after a
   failed run, while trigrun must defer and must never start a second run for one fire.
4. The run id and URL are pushed to XCom (``run_id``, ``run_url``) before any wait, so the
   "Downstream run" link works while the task is deferred; a deferring task also pushes the
   trigger's execution log (``trigger_log``), readable during the wait.
5. ``wait_for_completion``: ``deferrable=True`` hands the wait to ``TrigRunTrigger`` in the
   triggerer (no worker slot held; the trigger request is never sent from there); otherwise
   the worker polls. The wait has its own deadline (``timeout``).
6. XCom ``return_value`` is the execution log (``TriggerResult.to_log()``: status, duration,
   attempts, response, run id/URL, idempotency key...) with the wait's outcome under ``wait``.
   Secrets are redacted from all of it.

A downstream run that ended ``failed`` or ``cancelled`` fails the task without Airflow retries
(``AirflowFailException``): a retry would adopt that same run again. Poll errors and timeouts
stay retryable: a retry resumes waiting on the same run. With ``idempotency.enabled: false``
every try fires anew and every failure is retryable.

``on_kill`` (task killed, or ``execution_timeout`` while polling in the worker) cancels the
downstream run. It runs in a signal handler, so the cancel runs in a helper thread that the
handler waits on for at most ``KILL_CANCEL_WAIT`` seconds: the supervisor escalates to SIGKILL
after five.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import quote

from ._compat import (  # first: a clear ImportError without Airflow
    AirflowFailException,
    XComArg,
    conf,
    current_dag_and_group,
    expand_mapped_kwargs,
    mapped_expand_input,
    task_log_url,
)

# isort: split
from airflow.sdk import BaseOperator

from .. import (
    Engine,
    Event,
    JobSpec,
    RunFailed,
    RunState,
    RunTimeout,
    SecretNotFound,
    SpecError,
    TriggerResult,
    TrigRunError,
    Upstream,
    idempotency_key,
)
from .._models import slugify
from ._render import (
    airflow_names,
    bound_origins,
    duration,
    flag,
    is_template,
    refuse_foreign_origins,
    refuse_mapped_templates,
    refuse_smuggled,
)
from ._spec import (
    REQUEST_ARGS,
    SPEC_ARGS,
    apply_connection,
    build_spec_dict,
    event_status,
    lineage_dataset,
    placeholder,
    scheduled_time,
    spec_to_dict,
    validate,
)
from .assets import asset_extra, job_asset
from .hooks import TrigRunHook, sync_engine
from .links import XCOM_RUN_ID, XCOM_RUN_URL, XCOM_TRIGGER_LOG, TrigRunLink, link_for
from .secrets import explain_missing
from .triggers import SETTLE_SECONDS, TrigRunTrigger

STATE_KEY = "trigrun"
KILL_CANCEL_WAIT = 4.0
# Airflow's own defer timeout is only a backstop behind the trigger's deadline.
DEFER_GRACE_SECONDS = 300
# The shortest remainder of a delay that is deferred rather than slept in the worker.
DEFER_MIN_SECONDS = 6.0


# Spec arguments by the spec path they fill (for mapped arguments expanded from XCom).
_ARG_PATHS: dict[str, tuple[str, ...]] = {
    "spec": (), **{arg: ("request", name) for arg, name in REQUEST_ARGS.items()},
    **{arg: (name,) for arg, name in SPEC_ARGS.items()},
}
# A clear (a new try) after the downstream run ended like this fires a new run.
_ENDED_BADLY = (RunState.FAILED, RunState.CANCELLED)


# Bounds the walk along the chain of keys (one lookup and one status check per failed run).
MAX_RERUNS = 100


def _with_lineage_parent(spec: JobSpec, ti: Any) -> JobSpec:
    """An Airflow target's conf with OpenLineage's parent run facet (``conf["openlineage"]``),
    as Airflow's ``TriggerDagRunOperator`` passes it; the spec as it is when the OpenLineage
    provider is absent or disabled."""
    target = spec.target
    if getattr(target, "type", None) != "airflow" or ti is None:
        return spec
    try:
        from airflow.providers.standard.utils.openlineage import (
            safe_inject_openlineage_properties_into_dagrun_conf,
        )
    except ImportError:
        return spec
    conf = dict(getattr(target, "conf", None) or {})
    new = safe_inject_openlineage_properties_into_dagrun_conf(dr_conf=conf, ti=ti)
    if not isinstance(new, dict) or new == conf:
        return spec
    return spec.model_copy(update={"target": target.model_copy(update={"conf": new})})


def rerun_key(base: str, n: int) -> str:
    """The ``n``-th key of a scheduled fire: ``base`` first, then ``base__rerun<n>``, one per
    downstream run that ended failed or cancelled before a new try (clear, re-run) came."""
    return base if n <= 0 else f"{base}__rerun{n}"


class TrigRunOperator(BaseOperator):
    """Trigger an external job (Airflow DAG, dbt Cloud job, Prefect deployment, Dagster job,
    webhook) and optionally wait for the run it started.

    :param spec: a ``trigrun.JobSpec`` or a dict in the job-spec format (templated).
    :param url, method, headers, body, request_timeout, verify: the raw request, instead of or on
        top of ``spec["request"]``.
    :param job_name, target, auth, trigger_retry_policy, wait, idempotency, ttl_seconds, overlap,
        job_params, max_response_bytes, delay_seconds, job_queue, max_request_bytes,
        link_upstream: the other job-spec fields (``name``, ``retry_policy``, ``params`` and
        ``queue`` are renamed: Airflow's operator already has ``retry_policy``, ``params`` and
        ``queue``, the executor's queue). ``job_name`` defaults to ``<dag_id>.<task_id>``
        (plus the map index), which keys idempotency, so two tasks never adopt each other's
        runs.
    :param wait_for_completion: wait for the run to end; default: the spec's ``wait.enabled``
        (yes when the target can report a run's state).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param poll_interval: seconds between status checks; default ``wait.poll_interval_seconds``.
    :param timeout: the wait's deadline in seconds; default ``wait.timeout_seconds``.
    :param trigrun_conn_id: a ``trigrun`` connection that supplies base URL, auth, headers.
    :param render_mapped_values: let Airflow render template syntax in values mapped from
        XCom (``expand``/``expand_kwargs``); off by default, such a value fails the task
        (docs/security.md).
    :param emit_asset: on success, emit the job's Airflow asset (``job_asset(job name)``,
        added to ``outlets``), so other DAGs can be scheduled on it.

    The spec's ``queue`` puts the task in the Airflow pool ``queue.name`` (one slot), and its
    ``delay_seconds`` delays the fire after the scheduled time: a deferrable task defers on a
    timer first, holding no worker slot; otherwise the worker sleeps.
    """

    template_fields: Sequence[str] = ("spec", "trigrun_conn_id", "poll_interval", "timeout",
                                      "wait_for_completion", "job_name")
    template_fields_renderers: ClassVar[dict[str, str]] = {"spec": "json"}
    ui_color = "#e3f1fb"

    @property  # type: ignore[override]
    def operator_extra_links(self) -> tuple[TrigRunLink, ...]:
        """The button named for the target ("Dagster run"...). A mapped task (Airflow hands
        this property its ``MappedOperator``) is judged by its partial arguments."""
        spec = getattr(self, "spec", None)
        if spec is None:
            partial = getattr(self, "partial_kwargs", None) or {}
            spec = partial.get("spec")
            if isinstance(spec, JobSpec):
                spec = spec_to_dict(spec)
            fields = {k: partial.get(k) for k in ("url", "target")}
            try:
                spec = build_spec_dict(spec, fields, "mapped task")
            except (SpecError, TypeError):
                spec = None
        return (link_for(spec),)

    def __init__(
        self,
        *,
        spec: JobSpec | Mapping[str, Any] | None = None,
        url: str | None = None,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        request_timeout: float | None = None,
        verify: bool | str | None = None,
        job_name: str | None = None,
        target: str | Mapping[str, Any] | None = None,
        auth: Mapping[str, Any] | None = None,
        trigger_retry_policy: Mapping[str, Any] | None = None,
        wait: Mapping[str, Any] | None = None,
        idempotency: Mapping[str, Any] | None = None,
        ttl_seconds: float | None = None,
        overlap: str | None = None,
        job_params: Mapping[str, Any] | None = None,
        max_response_bytes: int | None = None,
        delay_seconds: float | str | None = None,
        job_queue: Mapping[str, Any] | None = None,
        max_request_bytes: int | None = None,
        link_upstream: bool | None = None,
        wait_for_completion: bool | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        trigrun_conn_id: str | None = None,
        emit_asset: bool = False,
        render_mapped_values: bool = False,
        **kwargs: Any,
    ) -> None:
        where = f"task {kwargs.get('task_id')!r}"
        if isinstance(kwargs.get("retry_policy"), Mapping):
            # Airflow 3.3's BaseOperator takes `retry_policy` (a RetryPolicy object for task
            # retries) and would keep a dict silently, leaving the trigger's retries default.
            raise SpecError(
                f"{where}: retry_policy={dict(kwargs['retry_policy'])!r} is Airflow's own "
                "argument (a RetryPolicy object that decides task retries). For the trigger "
                "request's retries in the job-spec shape use trigger_retry_policy={...}, or "
                "put retry_policy inside spec={...}.")
        if isinstance(kwargs.get("queue"), Mapping):
            # BaseOperator's `queue` is the executor's queue (a Celery queue name).
            raise SpecError(
                f"{where}: queue={dict(kwargs['queue'])!r} is Airflow's own argument (the "
                "executor queue, a name). For the job's queue (an Airflow pool with its "
                "concurrency limit) use job_queue={'name': ..., 'concurrency_limit': ...}, or "
                "put queue inside spec={...}.")
        fields = {"url": url, "method": method, "headers": headers, "body": body,
                  "request_timeout": request_timeout, "verify": verify, "job_name": job_name,
                  "target": target, "auth": auth, "trigger_retry_policy": trigger_retry_policy,
                  "wait": wait, "idempotency": idempotency, "ttl_seconds": ttl_seconds,
                  "overlap": overlap, "job_params": job_params,
                  "max_response_bytes": max_response_bytes, "delay_seconds": delay_seconds,
                  "job_queue": job_queue, "max_request_bytes": max_request_bytes,
                  "link_upstream": link_upstream}
        data = build_spec_dict(spec, fields, where)
        # The spec's params are Airflow params too, so `{{ params.x }}` renders with them.
        if data.get("params"):
            kwargs["params"] = {**data["params"], **(kwargs.get("params") or {})}
        # A job's queue is an Airflow pool: the scheduler then keeps at most the pool's slots
        # of the queue's tasks running, across DAGs. An explicit `pool=` wins.
        queue = data.get("queue")
        if isinstance(queue, Mapping) and isinstance(queue.get("name"), str) and \
                not is_template(queue["name"]) and not kwargs.get("pool"):
            kwargs["pool"] = queue["name"]
            kwargs.setdefault("pool_slots", 1)
        super().__init__(**kwargs)
        self.spec: dict[str, Any] = data
        self.job_name = job_name
        self.deferrable = deferrable
        self.trigrun_conn_id = trigrun_conn_id
        # Templated scalars stay as written until rendered; the others are checked now, so a
        # bad value fails while the DAG file is parsed, naming the task and the argument.
        self.wait_for_completion: Any = wait_for_completion
        self.poll_interval: Any = poll_interval
        self.timeout: Any = timeout
        self._coerce_scalars()
        self._fired: tuple[JobSpec, str] | None = None
        self._waiting = False
        self._trigrun_map_index: int | None = -1
        self.emit_asset = bool(emit_asset)
        self.render_mapped_values = bool(render_mapped_values)
        if self.emit_asset:
            self._asset_job = self._parse_time_job_name(where)
            asset = job_asset(self._asset_job)
            if asset not in self.outlets:
                self.outlets = [*self.outlets, asset]
        already_valid = isinstance(spec, JobSpec) and not any(
            v is not None for v in fields.values()) and not trigrun_conn_id
        if not already_valid:
            # Fail while the DAG file is parsed, naming task, job and field. A connection is
            # never looked up here: a placeholder stands in for it.
            check = {"name": self.task_id, **data}
            if trigrun_conn_id:
                conn = "templated_connection" if is_template(trigrun_conn_id) else trigrun_conn_id
                check = apply_connection(check, placeholder(conn))
            if is_template(check.get("name")):
                # The name is known at run time only; everything else is checked now.
                check["name"] = "templated_job_name"
            validate(check, f"{where} (DAG file check)")

    def _coerce_scalars(self) -> None:
        tid = self.task_id
        if not is_template(self.wait_for_completion):
            self.wait_for_completion = flag(self.wait_for_completion, tid, "wait_for_completion")
        if not is_template(self.poll_interval):
            self.poll_interval = duration(self.poll_interval, tid, "poll_interval")
        if not is_template(self.timeout):
            self.timeout = duration(self.timeout, tid, "timeout")
        if isinstance(self.trigrun_conn_id, str) and not is_template(self.trigrun_conn_id):
            self.trigrun_conn_id = self.trigrun_conn_id.strip() or None

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``BaseOperator.partial``, with the job queue's pool and the job's asset put in the
        partial arguments: the scheduler reads a mapped task's pool and outlets from them,
        never from the operator built at run time."""
        kwargs = dict(kwargs)
        where = f"task {kwargs.get('task_id')!r}"
        fields = {k: kwargs.get(k) for k in (*SPEC_ARGS, *REQUEST_ARGS)}
        try:
            data = build_spec_dict(kwargs.get("spec"), fields, where)
        except (SpecError, TypeError):  # everything is expanded: the run time knows it
            data = {}
        queue = data.get("queue")
        if isinstance(queue, Mapping) and isinstance(queue.get("name"), str) and \
                not is_template(queue["name"]) and not kwargs.get("pool"):
            kwargs["pool"] = queue["name"]
            kwargs.setdefault("pool_slots", 1)
        if kwargs.get("emit_asset"):
            name = kwargs.get("job_name") or data.get("name")
            if not name:
                dag, group = current_dag_and_group(kwargs.get("dag"))
                group = kwargs.get("task_group") or group
                if dag is None:
                    raise SpecError(f"{where}: emit_asset=True needs a job name, and the DAG "
                                    "of this task is not known here; give job_name=...")
                task_id = str(kwargs.get("task_id"))
                task_id = group.child_id(task_id) if group is not None else task_id
                name = f"{getattr(dag, 'dag_id', None)}.{task_id}"
            if is_template(name):
                raise SpecError(f"{where}: emit_asset=True needs a job name known when the DAG "
                                f"file is parsed, but it is the template {name!r}; give a "
                                "plain job_name")
            outlets = list(kwargs.get("outlets") or [])
            if (asset := job_asset(str(name))) not in outlets:
                outlets.append(asset)
            kwargs["outlets"] = outlets
        return super().partial(**kwargs)

    def _parse_time_job_name(self, where: str) -> str:
        # The asset is registered from the DAG file, so its job name must be known there.
        name = self.job_name or self.spec.get("name") or self.default_job_name()
        if is_template(name):
            raise SpecError(f"{where}: emit_asset=True needs a job name known when the DAG file "
                            f"is parsed, but it is the template {name!r}; give a plain "
                            "job_name, or pass outlets=[trigrun.airflow.job_asset(...)] yourself")
        return str(name)

    # -- spec ------------------------------------------------------------------------------
    def default_job_name(self) -> str:
        return f"{self.dag_id}.{self.task_id}"

    def job_name_for_run(self) -> str:
        """The job name, which keys idempotency: ``job_name``, the spec's ``name``, or
        ``<dag_id>.<task_id>``; a mapped instance adds ``[map_index]``, so every instance is
        its own fire even when all share one name."""
        name = str(self.job_name or self.spec.get("name") or self.default_job_name())
        index = self._trigrun_map_index
        if index is not None and index >= 0 and not name.endswith(f"[{index}]"):
            name = f"{name}[{index}]"
        return name

    def _named(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {**data, "name": self.job_name_for_run()}

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any,
                                   jinja_env: Any, seen_oids: set[int]) -> None:
        """Airflow renders the templated fields; trigrun adds its names to the context, then
        refuses references that rendering produced and coerces the rendered scalars.

        This hook, not ``render_template_fields``, is what both paths call: an unmapped task
        through its own ``render_template_fields``, a mapped one through the
        ``MappedOperator``, which builds this operator and calls only this method.
        """
        if parent is not self:  # a nested templated object
            super()._do_render_template_fields(parent, template_fields, context, jinja_env,
                                               seen_oids)
            return
        ti = context.get("ti")
        index = getattr(ti, "map_index", -1)
        self._trigrun_map_index = index if isinstance(index, int) else -1
        if not self.render_mapped_values:
            refuse_mapped_templates(self.task_id, self._trigrun_map_index,
                                    self._mapped_values(context))
        source = copy.deepcopy(self.spec)
        when = scheduled_time(context)
        if is_template(self.job_name):
            # First, so that `{{ job.name }}` in the spec is the rendered name.
            names = airflow_names(context, when, self.default_job_name(), "")
            super()._do_render_template_fields(parent, ("job_name",), names, jinja_env,
                                               seen_oids)
        name = self.job_name_for_run()
        merged = airflow_names(context, when, name, slugify(name))
        super()._do_render_template_fields(parent, template_fields, merged, jinja_env, seen_oids)
        runtime = self._runtime_fields(context)
        refuse_smuggled(self.task_id, source, self.spec, runtime)
        self._trigrun_bound = bound_origins(source, runtime, self.task_id)
        self._coerce_scalars()

    def _runtime_fields(self, context: Any) -> tuple[tuple[str, ...], ...]:
        """Spec paths of mapped arguments whose values were expanded from XCom at run time."""
        dag = context.get("dag")
        mapped = getattr(dag, "task_dict", {}).get(self.task_id) if dag is not None else None
        if mapped is None or not hasattr(mapped, "partial_kwargs"):  # not a mapped task
            return ()
        expand_input = mapped_expand_input(mapped)
        if expand_input is None:  # this Airflow hides it: every argument is data
            return tuple(_ARG_PATHS.values())
        value = getattr(expand_input, "value", None)
        if isinstance(value, XComArg):  # expand_kwargs(upstream.output): every argument
            return tuple(_ARG_PATHS.values())
        items: list[tuple[str, Any]] = []
        if isinstance(value, Mapping):
            items = list(value.items())
        elif isinstance(value, (list, tuple)):  # expand_kwargs([{...}, XComArg...])
            for entry in value:
                if isinstance(entry, XComArg):
                    return tuple(_ARG_PATHS.values())
                if isinstance(entry, Mapping):
                    items += list(entry.items())
        return tuple(_ARG_PATHS[arg] for arg, v in items
                     if arg in _ARG_PATHS and list(XComArg.iter_xcom_references(v)))

    def _mapped_values(self, context: Any) -> dict[str, Any]:
        """This mapped instance's arguments that came from XCom, as resolved (none unmapped)."""
        runtime = set(self._runtime_fields(context))
        if not runtime:
            return {}
        mapped = context["dag"].task_dict[self.task_id]
        written = set(getattr(mapped, "partial_kwargs", {}) or {})
        args = {arg for arg, path in _ARG_PATHS.items() if path in runtime} - written
        values = expand_mapped_kwargs(mapped, context)
        if values is None:
            # This operator was built from the expanded values: read them off its spec.
            return {arg: _at(self.spec, _ARG_PATHS[arg]) for arg in args}
        return {k: v for k, v in values.items() if k in args}

    def job_spec(self) -> JobSpec:
        """The rendered spec, completed from the connection, validated. Execute time only."""
        self._coerce_scalars()
        data = self._named(self.spec)
        info = None
        if self.trigrun_conn_id:
            info = TrigRunHook(trigrun_conn_id=self.trigrun_conn_id).connection_info()
            if info is not None:
                data = apply_connection(data, info)
                self._rates = info.rates()
        spec = validate(data, f"task {self.task_id!r}")
        refuse_foreign_origins(self.task_id, spec, getattr(self, "_trigrun_bound", None), info)
        return spec

    def _on_event(self, event: Event) -> None:
        self.log.info("%s", event.message)

    def _engine(self) -> Engine:
        rates = getattr(self, "_rates", None)
        # The events are the task log's lines; the `trigrun` logger would repeat each one.
        return sync_engine(on_event=self._on_event, log_events=False,
                           **({"max_requests_per_second": rates} if rates else {}))

    # -- execute ---------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        spec = self.job_spec()
        when = scheduled_time(context)
        delay = float(getattr(spec, "delay_seconds", 0) or 0)
        if delay > 0:
            moment = when + timedelta(seconds=delay)
            left = (moment - datetime.now(timezone.utc)).total_seconds()
            if left >= DEFER_MIN_SECONDS and self.deferrable:
                # A timer in the triggerer: no worker slot is held while the delay runs. A
                # shorter remainder is slept below: resuming costs a new task start, and
                # Airflow 3.3.2 can fail a task whose trigger fires within about 5 s of its
                # deferral (see SETTLE_SECONDS in triggers.py).
                from airflow.providers.standard.triggers.temporal import DateTimeTrigger

                self.log.info("job %r: delay_seconds=%g, deferring until %s before the fire",
                              spec.name, delay, moment.isoformat())
                self.defer(trigger=DateTimeTrigger(moment=moment),
                           method_name="execute_after_delay")
            if left > 0:
                self.log.info("job %r: delay_seconds=%g, waiting %.1fs in the worker before "
                              "the fire", spec.name, delay, left)
                time.sleep(left)
        return self._fire_and_wait(context, spec, when)

    def execute_after_delay(self, context: Any, event: Any = None) -> dict[str, Any]:
        """Resume after the delay's timer: fire now (the delay is over)."""
        return self._fire_and_wait(context, self.job_spec(), scheduled_time(context))

    def _fire_and_wait(self, context: Any, spec: JobSpec, when: datetime) -> dict[str, Any]:
        fire_log = self._fire_for_try(context, spec, when)
        run_id, run_url = fire_log.get("run_id"), fire_log.get("run_url")
        ti = context["ti"]
        if run_id:
            ti.xcom_push(key=XCOM_RUN_ID, value=run_id)
            ti.xcom_push(key=XCOM_RUN_URL, value=run_url)
            self.log.info("job %r: %s run %s: %s", spec.name,
                          "adopted" if fire_log.get("adopted") else "started", run_id,
                          run_url or "(the target gives no run URL)")
        waits = spec.waits if self.wait_for_completion is None else self.wait_for_completion
        if fire_log.get("skipped"):
            self.log.info("job %r skipped: %s", spec.name, fire_log.get("reason"))
            return self._emitted(context, fire_log)
        if not waits:
            return self._emitted(context, fire_log)
        if not run_id:
            raise TrigRunError(f"job {spec.name!r}: the target returned no run id, so its run "
                               "cannot be waited on; set wait.run_id_path (webhooks) or "
                               "wait_for_completion=False")
        self._fired = (spec, str(run_id))
        interval = self.poll_interval or spec.wait.poll_interval_seconds
        timeout = self.timeout if self.timeout is not None else spec.wait.timeout_seconds
        end_time = time.time() + timeout
        if self.deferrable:
            # The execution log so far is visible while the task is deferred, and it is how
            # execute_complete finds it when next_kwargs lose it (dag.test() replaces them).
            ti.xcom_push(key=XCOM_TRIGGER_LOG, value=fire_log)
            self.log.info("deferring: waiting for run %s in the triggerer", run_id)
            self.defer(
                trigger=TrigRunTrigger(spec=spec_to_dict(spec), run_id=str(run_id),
                                       end_time=end_time, poll_interval=interval,
                                       run_url=run_url, conn_id=self.trigrun_conn_id,
                                       not_before=time.time() + SETTLE_SECONDS,
                                       rates=getattr(self, "_rates", None) or None),
                method_name="execute_complete",
                kwargs={"fire_log": fire_log},
                timeout=timedelta(seconds=timeout + max(DEFER_GRACE_SECONDS, 3 * interval)),
            )
        # Left set if the wait is interrupted (execution_timeout, SIGTERM): on_kill then cancels.
        self._waiting = True
        try:
            with self._engine() as engine:
                run = engine.wait(spec, str(run_id), poll_interval=interval, end_time=end_time)
        except SecretNotFound as exc:
            raise explain_missing(exc, f"task {self.task_id!r}") from None
        self._waiting = False
        event = {"status": event_status(run.state.value), "run_id": run.run_id,
                 "message": run.message, "run_url": run.run_url or run_url,
                 "state": run.state.value, "polls": run.polls,
                 "duration_ms": round(run.duration_ms, 1), "waited_in": "worker"}
        return self._emitted(context, self._finish(spec, fire_log, event))

    def upstream(self, context: Any) -> Upstream:
        """This task instance as the downstream run's upstream: its name and its page in the
        Airflow UI (``ti.log_url``, Airflow's own URL of the task instance, built on
        ``[api] base_url``)."""
        ti = context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or self.dag_id
        run_id = str(getattr(ti, "run_id", None) or getattr(context.get("dag_run"), "run_id", ""))
        index = getattr(ti, "map_index", -1)
        mapped = f", map index {index}" if isinstance(index, int) and index >= 0 else ""
        name = f"Airflow task {dag_id}.{self.task_id} (run {run_id}{mapped})"
        url = task_log_url(ti)
        if url is None:
            base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
            tries = getattr(ti, "try_number", None)
            url = (f"{base}/dags/{dag_id}/runs/{quote(run_id, safe='')}/tasks/{self.task_id}"
                   + (f"/mapped/{index}" if mapped else "")
                   + (f"?try_number={tries}" if isinstance(tries, int) and tries > 0 else ""))
        return Upstream(kind="airflow", name=name, url=url, run_id=run_id or None)

    def _emitted(self, context: Any, log: dict[str, Any]) -> dict[str, Any]:
        """The log, after giving the job's asset event (``emit_asset``) the run it is about."""
        if self.emit_asset:
            events = context.get("outlet_events")
            if events is not None:
                try:
                    events[job_asset(self._asset_job)].extra.update(asset_extra(log))
                except Exception as exc:  # the event itself is emitted by Airflow anyway
                    self.log.warning("could not add the run to the asset event (%s)",
                                     type(exc).__name__)
        return log

    def send_trigger(self, context: Any, spec: JobSpec, when: Any) -> TriggerResult:
        """Send the trigger request (with the job's retry policy); raise if it failed."""
        upstream = self.upstream(context)
        spec = _with_lineage_parent(spec, context.get("ti"))
        try:
            with self._engine() as engine:
                # delay=False: the operator already delayed (in the triggerer or the worker).
                result = engine.fire(spec, render=False, scheduled_time=when,
                                     upstream=upstream, delay=False)
        except SecretNotFound as exc:
            raise explain_missing(exc, f"task {self.task_id!r}") from None
        if result.adopted:
            self.log.info("adopted run %s: %s", result.run_id, result.reason)
        result.raise_for_failure()
        return result

    def execute_complete(self, context: Any, event: Mapping[str, Any],
                         fire_log: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: succeed with the log, or fail with its message."""
        if not fire_log:
            fire_log = context["ti"].xcom_pull(task_ids=self.task_id, key=XCOM_TRIGGER_LOG)
        return self._emitted(context, self._finish(self.job_spec(), dict(fire_log or {}),
                                                   {**event, "waited_in": "triggerer"}))

    def _finish(self, spec: JobSpec, fire_log: dict[str, Any],
                event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        message = str(event.get("message") or "")
        self.log.info("run %s: %s (%s): %s", event.get("run_id"), status, message,
                      event.get("run_url") or fire_log.get("run_url") or "(no run URL)")
        out = {**fire_log, "wait": {k: v for k, v in event.items() if k != "run_id"}}
        if event.get("run_url"):
            out["run_url"] = event["run_url"]
        if status == "success":
            return out
        if status == "timeout":
            raise RunTimeout(message)
        if event.get("state") in ("failed", "cancelled") and spec.idempotency.enabled:
            raise AirflowFailException(
                f"{message}. Not retried: a retry of this task would adopt the same run "
                "(exactly-once). Clear this task (or re-run the DAG run) to fire a new run, "
                "or set idempotency.enabled: false to fire anew on every try.")
        raise RunFailed(message)

    # -- exactly once across tries, a new run per clear -------------------------------------
    def generation(self, context: Any) -> int:
        """The first try number of the current generation of tries of this task instance.

        Airflow sets ``max_tries = try_number + retries`` when a task is cleared, and retries
        never change it, so ``max_tries - retries + 1`` is the same for a try and its retries
        and new after each clear: 1 for a new task instance (also a new DAG run for the same
        logical date).
        """
        ti = context.get("ti")
        try:
            try_number = int(getattr(ti, "try_number", 1) or 1)
            max_tries = getattr(ti, "max_tries", None)
            if max_tries is None:
                return 1
            first = int(max_tries) - int(self.retries or 0) + 1
        except (TypeError, ValueError):
            return 1
        return max(1, min(first, try_number))

    def _fire_for_try(self, context: Any, spec: JobSpec, when: Any) -> dict[str, Any]:
        """The execution log of this try's fire: sent now, or adopted.

        The keys of one scheduled fire form a chain (``rerun_key``). A try fires the first key
        it may use; when the target already has that run (adopted) and the run ended failed
        or cancelled, a try that did not start it (the task was cleared, or the DAG re-run for
        the same logical date) moves on to the next key, so a new run starts. A run that is
        still going or succeeded is adopted. Retries of one try share its key: the key is
        recorded in ``task_state_store`` before the request is sent.
        """
        if not spec.idempotency.enabled:
            return self.send_trigger(context, spec, when).to_log()
        generation = self.generation(context)
        base = idempotency_key(spec, when)
        saved = self._saved(context, base)
        ti = context.get("ti")
        if saved is not None and saved.get("generation", 1) == generation:
            if saved.get("run_id"):
                return self._adopted_log(context, spec, saved)
            # An earlier try of this generation meant to send this key; whatever run it
            # has is this generation's own.
            n, may_move_on = int(saved.get("n") or 0), False
        elif saved is not None:
            n, may_move_on = int(saved.get("n") or 0), True
        else:
            # No record: a first try of its generation did not start any run there is; a
            # retry without a record (no task_state_store) must not fire a second run.
            n = 0
            may_move_on = int(getattr(ti, "try_number", 1) or 1) <= generation
        while True:
            keyed = self._keyed(spec, base, n)
            self._record(context, base, n, generation, None)
            result = self.send_trigger(context, keyed, when)
            if result.run_id:
                self._record(context, base, n, generation, result)
            log = result.to_log()
            if not (may_move_on and result.adopted and result.run_id and n < MAX_RERUNS
                    and self._ended_badly(keyed, str(result.run_id))):
                return log
            self.log.info("run %s ended failed or cancelled before this try: firing a new run "
                          "(key %s)", result.run_id, rerun_key(base, n + 1))
            n += 1

    @staticmethod
    def _keyed(spec: JobSpec, base: str, n: int) -> JobSpec:
        if n <= 0:
            return spec
        data = spec_to_dict(spec)
        data["idempotency"] = {**(data.get("idempotency") or {}), "key": rerun_key(base, n)}
        return JobSpec.model_validate(data)

    def _record(self, context: Any, base: str, n: int, generation: int,
                result: TriggerResult | None) -> None:
        store = context.get("task_state_store")
        if store is None:
            return
        value: dict[str, Any] = {"base_key": base, "n": n, "generation": generation,
                                 "idempotency_key": rerun_key(base, n)}
        if result is not None:
            value.update(idempotency_key=result.idempotency_key, run_id=result.run_id,
                         run_url=result.run_url, scheduled_time=result.scheduled_time,
                         target=result.target)
        try:
            store.set(STATE_KEY, value)
        except Exception as exc:
            self.log.warning("could not save the fire in task_state_store (%s); a retry "
                             "relies on the idempotency key", type(exc).__name__)

    def _ended_badly(self, spec: JobSpec, run_id: str) -> bool:
        """Whether the run ended failed or cancelled. Unknown counts as no: never start a
        second run on a guess."""
        try:
            with self._engine() as engine:
                status = engine.poll(spec, run_id)
        except SecretNotFound as exc:
            raise explain_missing(exc, f"task {self.task_id!r}") from None
        except Exception as exc:
            self.log.warning("could not check run %s (%s); adopting it", run_id,
                             type(exc).__name__)
            return False
        self.log.info("run %s of an earlier try: %s", run_id, status.state.value)
        return status.state in _ENDED_BADLY

    def _saved(self, context: Any, base: str) -> dict[str, Any] | None:
        store = context.get("task_state_store")
        if store is None:
            return None
        try:
            saved = store.get(STATE_KEY)
        except Exception as exc:
            self.log.warning("task_state_store unavailable (%s); relying on the idempotency key",
                             type(exc).__name__)
            return None
        if not isinstance(saved, dict):
            return None
        # Records of other scheduled times or job names (a renamed job) are not this fire's.
        if saved.get("base_key", saved.get("idempotency_key")) != base or \
                not (saved.get("run_id") or "n" in saved):
            return None
        return saved

    def _adopted_log(self, context: Any, spec: JobSpec, saved: Mapping[str, Any]) -> dict[str, Any]:
        ti = context.get("ti")
        reason = (f"task_state_store: try {getattr(ti, 'try_number', '?')} adopts run "
                  f"{saved['run_id']}, started by an earlier try of this task")
        self.log.info("%s; not sending the trigger request again", reason)
        return {"job": spec.name, "ok": True, "status": None, "duration_ms": 0.0,
                "attempts": [], "response": None, "response_truncated": False,
                "run_id": saved["run_id"], "run_url": saved.get("run_url"),
                "idempotency_key": saved.get("idempotency_key"),
                "scheduled_time": saved.get("scheduled_time"),
                "target": saved.get("target"), "skipped": False, "reason": reason,
                "adopted": True, "error": None}

    # -- OpenLineage (only when apache-airflow-providers-openlineage is installed) ------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """The downstream job as this task's output dataset: namespace the target's origin,
        name the job on it (DAG id, Dagster job, dbt Cloud ``account/job``, Prefect deployment,
        webhook path), with the downstream run's URL when the task pushed one. Called by the
        OpenLineage listener; imports nothing of OpenLineage before it is."""
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        namespace, name = lineage_dataset(self._named(self.spec))
        facets: dict[str, Any] = {}
        url = None
        if task_instance is not None:
            with contextlib.suppress(Exception):
                url = task_instance.xcom_pull(task_ids=self.task_id, key=XCOM_RUN_URL)
        if url:
            from openlineage.client.facet_v2 import documentation_dataset

            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(
                description=f"Downstream run: {url}")
        return OperatorLineage(outputs=[Dataset(namespace=namespace, name=name, facets=facets)])

    # -- kill ------------------------------------------------------------------------------
    def on_kill(self) -> None:
        fired = self._fired
        if fired is None or not self._waiting:
            return
        spec, run_id = fired
        self.log.info("task killed: cancelling downstream run %s", run_id)

        def cancel() -> None:
            try:
                with self._engine() as engine:
                    ok = engine.cancel(spec, run_id)
                self.log.info("cancel of run %s %s", run_id, "requested" if ok else "failed")
            except Exception as exc:
                self.log.warning("cancelling run %s failed: %s", run_id, type(exc).__name__)

        # A signal handler may interrupt the main thread while it holds the supervisor
        # channel's lock; a helper thread cannot deadlock on it, and is waited for briefly.
        worker = threading.Thread(target=cancel, name="trigrun-cancel", daemon=True)
        worker.start()
        worker.join(KILL_CANCEL_WAIT)


def _at(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data
