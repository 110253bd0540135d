"""``TrigRunSensor``: wait for a downstream run that already exists (given its run id).

Use it when the run was started elsewhere - another task, another system, a
``TrigRunOperator(wait_for_completion=False)`` upstream (``run_id`` is templated, so
``"{{ ti.xcom_pull(task_ids='fire', key='run_id') }}"`` works).

- ``poke`` mode: one status check per poke. Transient check failures (network errors, 408,
  425, 429, 5xx) count as "not yet" up to ``wait.max_consecutive_poll_errors`` in a row; a
  definite failure (401, 403, 404...) or a run that ended failed/cancelled fails the task.
- ``deferrable=True``: the same ``TrigRunTrigger`` as the operator, with the sensor's
  ``timeout`` as its deadline and ``poke_interval`` as its poll interval. The sensor never
  cancels the run it watches: not at its timeout, not when killed.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from ._compat import AirflowSensorTimeout, conf  # first: a clear ImportError without Airflow

# isort: split
from airflow.sdk import BaseSensorOperator

from .. import JobSpec, RunFailed, RunState, SecretNotFound
from .._targets import preset_for
from ._render import bound_origins, refuse_foreign_origins, refuse_smuggled
from ._spec import apply_connection, build_spec_dict, placeholder, spec_to_dict, validate
from .hooks import TrigRunHook, sync_engine
from .links import XCOM_RUN_ID, XCOM_RUN_URL, TrigRunLink, link_for
from .secrets import explain_missing
from .triggers import SETTLE_SECONDS, TrigRunTrigger

_HTTP = re.compile(r"HTTP (\d{3})")


def transient_check_failure(message: str) -> bool:
    """Whether a failed status check (``RunStatus.message``) is worth trying again."""
    m = _HTTP.search(message)
    if m is None:
        return True  # network error or timeout
    code = int(m.group(1))
    return code in (408, 425, 429) or code >= 500


class TrigRunSensor(BaseSensorOperator):
    """Wait until the downstream run ``run_id`` of a job ends.

    :param run_id: the run to watch (templated).
    :param spec: the job (``JobSpec`` or dict; templated); it says how to reach the target.
        The request fields of ``TrigRunOperator`` (``url``, ``target``, ``auth``...) work too.
    :param trigrun_conn_id: a ``trigrun`` connection (base URL, auth, headers).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("spec", "run_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"spec": "json"}
    ui_color = "#e3f1fb"

    @property  # type: ignore[override]
    def operator_extra_links(self) -> tuple[TrigRunLink, ...]:
        """The button named for the target ("Dagster run"...), like the operator's."""
        return (link_for(getattr(self, "spec", None)),)

    def __init__(self, *, run_id: str, spec: JobSpec | Mapping[str, Any] | None = None,
                 url: str | None = None, target: str | Mapping[str, Any] | None = None,
                 auth: Mapping[str, Any] | None = None, wait: Mapping[str, Any] | None = None,
                 job_name: str | None = None, trigrun_conn_id: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable",
                                                    fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        where = f"task {self.task_id!r}"
        fields = {"url": url, "target": target, "auth": auth, "wait": wait, "job_name": job_name}
        self.spec: dict[str, Any] = build_spec_dict(spec, fields, where)
        self.run_id = run_id
        self.trigrun_conn_id = trigrun_conn_id
        self.deferrable = deferrable
        self._check_errors = 0
        check = {"name": self.task_id, **self.spec}
        if trigrun_conn_id:
            check = apply_connection(check, placeholder(trigrun_conn_id))
        validate(check, f"{where} (DAG file check)")

    def _do_render_template_fields(self, parent: Any, template_fields: Any, context: Any,
                                   jinja_env: Any, seen_oids: set[int]) -> None:
        """As the operator: a ``secret://`` reference that only rendering produced (run conf,
        params, XCom, macros) is refused before any status check, so a run's conf cannot make
        the sensor send a secret to the status endpoint."""
        if parent is not self:
            super()._do_render_template_fields(parent, template_fields, context, jinja_env,
                                               seen_oids)
            return
        source = copy.deepcopy(self.spec)
        super()._do_render_template_fields(parent, template_fields, context, jinja_env,
                                           seen_oids)
        refuse_smuggled(self.task_id, source, self.spec)
        self._trigrun_bound = bound_origins(source, task_id=self.task_id)

    def job_spec(self) -> JobSpec:
        data = {"name": f"{self.dag_id}.{self.task_id}", **self.spec} if not self.spec.get(
            "name") else dict(self.spec)
        # The sensor watches a run it did not start: its deadline must not cancel that run.
        data["wait"] = {**(data.get("wait") or {}), "cancel_on_timeout": False}
        info = None
        if self.trigrun_conn_id:
            info = TrigRunHook(trigrun_conn_id=self.trigrun_conn_id).connection_info()
            if info is not None:
                data = apply_connection(data, info)
                self._rates = info.rates()
        spec = validate(data, f"task {self.task_id!r}")
        refuse_foreign_origins(self.task_id, spec, getattr(self, "_trigrun_bound", None), info)
        return spec

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        spec = self.job_spec()
        timeout = _seconds(self.timeout) or spec.wait.timeout_seconds
        self.defer(
            trigger=TrigRunTrigger(spec=spec_to_dict(spec), run_id=str(self.run_id),
                                   end_time=time.time() + timeout,
                                   poll_interval=_seconds(self.poke_interval) or 60.0,
                                   conn_id=self.trigrun_conn_id, cancel_on_kill=False,
                                   not_before=time.time() + SETTLE_SECONDS,
                                   rates=getattr(self, "_rates", None) or None),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + 300),
        )

    def poke(self, context: Any) -> bool:
        spec = self.job_spec()
        try:
            rates = getattr(self, "_rates", None)
            with sync_engine(on_event=lambda e: self.log.info("%s", e.message), log_events=False,
                             **({"max_requests_per_second": rates} if rates else {})) as engine:
                status = engine.poll(spec, str(self.run_id))
        except SecretNotFound as exc:
            raise explain_missing(exc, f"task {self.task_id!r}") from None
        self.log.info("run %s: %s (%s)", self.run_id, status.state.value, status.message)
        if status.state is RunState.UNKNOWN and status.message.startswith("status check failed"):
            self._check_errors += 1
            if transient_check_failure(status.message) and \
                    self._check_errors < spec.wait.max_consecutive_poll_errors:
                return False
            raise RunFailed(f"job {spec.name!r}: run {self.run_id}: {status.message}")
        self._check_errors = 0
        if not status.state.terminal:
            return False
        run_url = status.run_url or preset_for(spec).run_url(str(self.run_id))
        if run_url:
            context["ti"].xcom_push(key=XCOM_RUN_URL, value=run_url)
        context["ti"].xcom_push(key=XCOM_RUN_ID, value=str(self.run_id))
        if status.state is RunState.SUCCESS:
            return True
        raise RunFailed(f"job {spec.name!r}: run {self.run_id} ended {status.state.value} "
                        f"({status.message})")

    def execute_complete(self, context: Any, event: Mapping[str, Any]) -> dict[str, Any]:
        if event.get("run_url"):
            context["ti"].xcom_push(key=XCOM_RUN_URL, value=event["run_url"])
        if event.get("status") == "success":
            return dict(event)
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(str(event.get("message")))
        raise RunFailed(str(event.get("message")))


def _seconds(value: float | timedelta | None) -> float | None:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return None if value is None else float(value)
