"""Apache Airflow's stable REST API: v1 (Airflow 2, basic auth) and v2 (Airflow 3, JWT).

Exactly once: the ``dag_run_id`` is derived from the idempotency key, so a repeated trigger
gets 409 Conflict and the existing run is adopted.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from .._models import AirflowTarget, BasicAuth
from .._results import RunState
from .._upstream import Upstream
from ._base import JSON_HEADERS, HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus

STATES = {
    "queued": RunState.QUEUED,
    "running": RunState.RUNNING,
    "success": RunState.SUCCESS,
    "failed": RunState.FAILED,
}
# Airflow's default [api] maximum_page_limit.
BATCH_SIZE = 100
# The DAG run note's column (dag_run_note.content) holds 1000 characters.
NOTE_MAX = 1000
_RUN_ID_SAFE = re.compile(r"[^A-Za-z0-9_.~:+-]")


def dag_run_id(key: str) -> str:
    """Airflow's default ``allowed_run_id_pattern`` is ``^[A-Za-z0-9_.~:+-]+$``."""
    return _RUN_ID_SAFE.sub("_", key)[:250]


class AirflowPreset(Preset):
    name = "airflow"
    target: AirflowTarget

    @property
    def version(self) -> str:
        if self.target.api_version != "auto":
            return self.target.api_version
        # Airflow 3 removed /api/v1 and basic auth; Airflow 2 setups mostly use basic auth.
        return "v1" if isinstance(self.spec.auth, BasicAuth) else "v2"

    @property
    def base(self) -> str:
        return self.target.base_url.rstrip("/")

    def _runs_url(self) -> str:
        return f"{self.base}/api/{self.version}/dags/{quote(self.target.dag_id, safe='')}/dagRuns"

    def _headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, **self.base_headers()}

    def trigger_call(self, key: str | None, scheduled_iso: str, *,
                     upstream: Upstream | None = None) -> HttpCall:
        body: dict[str, Any]
        if self.spec.request is not None and isinstance(self.spec.request.body, dict):
            body = dict(self.spec.request.body)
        else:
            body = {"conf": dict(self.target.conf)}
            if self.target.note:
                body["note"] = self.target.note
        if upstream is not None:
            # The note is what the DAG run's page shows; the conf key is for the DAG's code.
            # A note or a `trigrun` conf key the job gives itself is kept.
            if not body.get("note"):
                body["note"] = upstream.line[:NOTE_MAX]
            conf = body.get("conf")
            if conf is None:
                conf = {}
            if isinstance(conf, dict) and "trigrun" not in conf:
                body["conf"] = {**conf, "trigrun": upstream.conf()}
        if key and "dag_run_id" not in body:
            body["dag_run_id"] = dag_run_id(key)
        if self.version == "v2" and "logical_date" not in body:
            # Required (but nullable) by Airflow 3.0's API; null lets runs share a time.
            body["logical_date"] = self.target.logical_date
        elif self.target.logical_date is not None and "logical_date" not in body:
            body["logical_date"] = self.target.logical_date
        if self.spec.request is not None:
            return self.raw_trigger_call(body=body)
        return HttpCall("POST", self._runs_url(), self._headers(), json=body)

    def _ref(self, data: Any) -> RunRef:
        if not isinstance(data, dict) or not data.get("dag_run_id"):
            raise PresetError("the Airflow response has no dag_run_id")
        run_id = str(data["dag_run_id"])
        return RunRef(run_id, self.run_url(run_id), STATES.get(str(data.get("state"))))

    def parse_trigger(self, reply: HttpReply) -> RunRef | None:
        return self._ref(reply.json())

    def is_conflict(self, reply: HttpReply) -> bool:
        return reply.status_code == 409

    def adopt_call(self, key: str) -> HttpCall | None:
        # The run the 409 is about: the dag_run_id the trigger sent (a raw body may set its own).
        body = self.spec.request.body if self.spec.request is not None else None
        given = body.get("dag_run_id") if isinstance(body, dict) else None
        return self.status_call(str(given) if given else dag_run_id(key))

    def conflict_hint(self, reply: HttpReply) -> str | None:
        # Airflow answers 409 for a duplicate dag_run_id and also for a duplicate logical
        # date. When the run the key names does not exist, it was the logical date: every
        # fire of a job with a fixed target.logical_date collides with the first one, a
        # re-run's new key (``...__rerunN``) included.
        body = self.spec.request.body if self.spec.request is not None else None
        fixed = body.get("logical_date") if isinstance(body, dict) and "logical_date" in body \
            else self.target.logical_date
        if fixed is None:
            return None
        return (f"Airflow has no DAG run with this fire's dag_run_id, so the 409 is about the "
                f"logical_date {fixed!r} another run of DAG {self.target.dag_id!r} already "
                "has. A job with a fixed target.logical_date starts one run per logical date: "
                "a new run for the same tick (a re-run after a failed run) cannot start. "
                "Leave target.logical_date unset (runs may then share a time), or clear the "
                "existing DAG run in Airflow to re-run it")

    def status_call(self, run_id: str) -> HttpCall:
        return HttpCall("GET", f"{self._runs_url()}/{quote(run_id, safe='')}", self._headers(),
                        purpose="status")

    def parse_status(self, reply: HttpReply) -> RunStatus:
        data = reply.json()
        return _status(data.get("state") if isinstance(data, dict) else None)

    def batch_key(self) -> Any:
        # The list of a DAG's runs cannot be filtered by run id (no ``run_id`` IN filter in
        # Airflow 3.3's v2 or 2.x's v1), so the batch is the DAG's active runs, and the runs
        # that ended are read from the list filtered by end_date_gte. REST v1 (Airflow 2)
        # has the same state, order_by, limit/offset, end_date_gte and total_entries as v2.
        return ("airflow", self._runs_url())

    def batch_calls(self, run_ids: list[str]) -> list[HttpCall]:
        return [self.batch_page(offset) for offset in range(0, len(run_ids), BATCH_SIZE)]

    @property
    def batch_lists(self) -> bool:
        return True

    def batch_page(self, offset: int) -> HttpCall:
        # Ordered by id (oldest first) so that the offset pages stay stable while runs end.
        return HttpCall("GET", f"{self._runs_url()}?state=queued&state=running&order_by=id"
                        f"&limit={BATCH_SIZE}&offset={offset}", self._headers(), purpose="status")

    def batch_ended_page(self, since: datetime, offset: int) -> HttpCall | None:
        # Every state, ended at or after `since` (the list's end_date_gte filter, v1 and v2).
        iso = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return HttpCall("GET", f"{self._runs_url()}?end_date_gte={iso}&order_by=id"
                        f"&limit={BATCH_SIZE}&offset={offset}", self._headers(), purpose="status")

    def batch_total(self, reply: HttpReply) -> int | None:
        data = reply.json()
        total = data.get("total_entries") if isinstance(data, dict) else None
        return total if isinstance(total, int) and total >= 0 else None

    def parse_batch(self, reply: HttpReply, run_ids: list[str]) -> dict[str, RunStatus]:
        data = reply.json()
        runs = data.get("dag_runs") if isinstance(data, dict) else None
        if not isinstance(runs, list):
            raise PresetError("the Airflow dagRuns reply has no dag_runs list")
        return {str(r["dag_run_id"]): _status(r.get("state")) for r in runs
                if isinstance(r, dict) and r.get("dag_run_id") is not None}

    def cancel_call(self, run_id: str) -> HttpCall | None:
        return HttpCall("PATCH", f"{self._runs_url()}/{quote(run_id, safe='')}", self._headers(),
                        json={"state": "failed"}, purpose="cancel")

    @property
    def cancel_checks_status(self) -> bool:
        # Airflow has no cancel: the PATCH marks any run failed, a succeeded one included,
        # and takes no precondition. So the state is read first (a run that ends between the
        # read and the PATCH is the one case left).
        return True

    def cancel_accepted(self, reply: HttpReply) -> bool:
        data = reply.json()
        return reply.ok and isinstance(data, dict) and data.get("state") == "failed"

    def active_call(self) -> HttpCall | None:
        return HttpCall("GET", f"{self._runs_url()}?state=queued&state=running&limit=100",
                        self._headers(), purpose="active")

    def parse_active(self, reply: HttpReply) -> list[RunRef]:
        data = reply.json()
        runs = data.get("dag_runs", []) if isinstance(data, dict) else []
        return [self._ref(r) for r in runs if r.get("state") in ("queued", "running")]

    def run_url(self, run_id: str) -> str | None:
        dag = quote(self.target.dag_id, safe="")
        if self.version == "v2":
            return f"{self.base}/dags/{dag}/runs/{quote(run_id, safe='')}"
        return f"{self.base}/dags/{dag}/grid?dag_run_id={quote(run_id, safe='')}"

    def auth_base_url(self) -> str | None:
        return self.base


_STATUSES: dict[str, RunStatus] = {}


def _status(raw: Any) -> RunStatus:
    """The RunStatus of a DAG run state; one shared object per known state."""
    hit = _STATUSES.get(raw) if isinstance(raw, str) else None
    if hit is not None:
        return hit
    state = STATES.get(str(raw))
    if state is None:
        return RunStatus(RunState.UNKNOWN, raw, f"unknown Airflow DAG run state {raw!r}")
    status = RunStatus(state, raw, f"DAG run state {raw}")
    _STATUSES[str(raw)] = status
    return status
