"""dbt Cloud's v2 API: trigger a job run, read its status code, cancel it.

dbt Cloud has no idempotency key, so the key is written into the run's ``cause`` and the
job's recent runs are searched for it before triggering (and before each retry).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .._models import DbtCloudTarget
from .._results import RunState
from .._upstream import Upstream
from ._base import JSON_HEADERS, HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus

STATUS = {
    1: RunState.QUEUED,
    2: RunState.QUEUED,  # starting
    3: RunState.RUNNING,
    10: RunState.SUCCESS,
    20: RunState.FAILED,
    30: RunState.CANCELLED,
}
STATUS_NAMES = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}
ACTIVE = (1, 2, 3)
BATCH_SIZE = 100  # dbt Cloud's largest page
DEFAULT_CAUSE = "Triggered by trigrun"
CAUSE_MAX = 255


class DbtCloudPreset(Preset):
    name = "dbt_cloud"
    target: DbtCloudTarget

    @property
    def _account(self) -> str:
        return f"{self.target.base_url.rstrip('/')}/api/v2/accounts/{quote(str(self.target.account_id), safe='')}"

    def _headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, **self.base_headers()}

    def trigger_call(self, key: str | None, scheduled_iso: str, *,
                     upstream: Upstream | None = None) -> HttpCall:
        body: dict[str, Any]
        if self.spec.request is not None and isinstance(self.spec.request.body, dict):
            body = dict(self.spec.request.body)
        else:
            body = {"cause": self.target.cause}
            if self.target.steps_override:
                body["steps_override"] = list(self.target.steps_override)
        cause = str(body.get("cause") or DEFAULT_CAUSE)
        if upstream is not None:
            # The cause is what dbt Cloud's run page shows as "Triggered by ...". A cause the
            # job sets itself is kept, with the upstream after it.
            cause = upstream.line if cause == DEFAULT_CAUSE else f"{cause} ({upstream.line})"
        # dbt Cloud keeps 255 characters; the key at the end is what a later fire looks for,
        # so the text before it is cut, never the key.
        tail = f" [{key}]" if key else ""
        if key or upstream is not None:
            body["cause"] = cause[:CAUSE_MAX - len(tail)] + tail
        if self.spec.request is not None:
            return self.raw_trigger_call(body=body)
        url = f"{self._account}/jobs/{quote(str(self.target.job_id), safe='')}/run/"
        return HttpCall("POST", url, self._headers(), json=body)

    def _ref(self, run: Any) -> RunRef:
        if not isinstance(run, dict) or run.get("id") is None:
            raise PresetError("the dbt Cloud response has no data.id")
        run_id = str(run["id"])
        return RunRef(run_id, run.get("href") or self.run_url(run_id), STATUS.get(run.get("status")))  # type: ignore[arg-type]

    def parse_trigger(self, reply: HttpReply) -> RunRef | None:
        data = reply.json()
        return self._ref(data.get("data") if isinstance(data, dict) else None)

    def _runs_query(self, statuses: tuple[int, ...] | None = None, *, limit: int = 20,
                    order: str = "-id", related: str | None = None) -> str:
        q = (f"{self._account}/runs/?job_definition_id={quote(str(self.target.job_id), safe='')}"
             f"&order_by={order}&limit={limit}")
        if statuses:
            q += "&status__in=" + _json_list(statuses)
        if related:
            q += "&include_related=" + _json_list((related,))
        return q

    def lookup_call(self, key: str) -> HttpCall | None:
        # A listed run carries its ``trigger`` (where the cause is) only when the request asks
        # for it with include_related; without it a run has just ``trigger_id``.
        return HttpCall("GET", self._runs_query(related="trigger"), self._headers(),
                        purpose="lookup")

    def parse_lookup(self, reply: HttpReply, key: str) -> RunRef | None:
        data = reply.json()
        runs = data.get("data") if isinstance(data, dict) else None
        for run in runs if isinstance(runs, list) else []:
            # Only the contract's field: the run's trigger.cause (a run has no cause of its own).
            trigger = run.get("trigger") if isinstance(run, dict) else None
            cause = trigger.get("cause") if isinstance(trigger, dict) else None
            if isinstance(cause, str) and cause.endswith(f"[{key}]"):
                return self._ref(run)
        return None

    def status_call(self, run_id: str) -> HttpCall:
        return HttpCall("GET", f"{self._account}/runs/{quote(run_id, safe='')}/", self._headers(),
                        purpose="status")

    def parse_status(self, reply: HttpReply) -> RunStatus:
        data = reply.json()
        return _status(data.get("data") if isinstance(data, dict) else None)

    def batch_key(self) -> Any:
        # The batch is the job's active runs (filtered by job and status); the runs that
        # ended are absent from it and read by id (``pk__in``, batch_ended_calls).
        return ("dbt_cloud", self._account, str(self.target.job_id))

    def batch_calls(self, run_ids: list[str]) -> list[HttpCall]:
        return [self.batch_page(offset) for offset in range(0, len(run_ids), BATCH_SIZE)]

    @property
    def batch_lists(self) -> bool:
        return True

    def batch_page(self, offset: int) -> HttpCall:
        return HttpCall("GET", f"{self._runs_query(ACTIVE, limit=BATCH_SIZE, order='id')}"
                        f"&offset={offset}", self._headers(), purpose="status")

    def batch_ended_calls(self, run_ids: list[str]) -> list[HttpCall] | None:
        # The runs list filters by id (``pk__in``): the runs that left the active listing
        # are read by id, one request per page, not one by one.
        calls = []
        for i in range(0, len(run_ids), BATCH_SIZE):
            page = run_ids[i:i + BATCH_SIZE]
            ids = [int(r) if r.isascii() and r.isdecimal() else r for r in page]
            calls.append(HttpCall(
                "GET", f"{self._account}/runs/?pk__in={_json_list(ids)}&order_by=id"
                f"&limit={len(page)}", self._headers(), purpose="status"))
        return calls

    def batch_total(self, reply: HttpReply) -> int | None:
        # dbt Cloud's list replies carry {"extra": {"pagination": {"total_count": n}}}.
        data = reply.json()
        extra = data.get("extra") if isinstance(data, dict) else None
        pages = extra.get("pagination") if isinstance(extra, dict) else None
        total = pages.get("total_count") if isinstance(pages, dict) else None
        return total if isinstance(total, int) and total >= 0 else None

    def parse_batch(self, reply: HttpReply, run_ids: list[str]) -> dict[str, RunStatus]:
        data = reply.json()
        runs = data.get("data") if isinstance(data, dict) else None
        if not isinstance(runs, list):
            raise PresetError("the dbt Cloud runs reply has no data list")
        return {str(r["id"]): _status(r) for r in runs
                if isinstance(r, dict) and r.get("id") is not None}


    def cancel_call(self, run_id: str) -> HttpCall | None:
        return HttpCall("POST", f"{self._account}/runs/{quote(run_id, safe='')}/cancel/",
                        self._headers(), purpose="cancel")

    @property
    def cancel_checks_status(self) -> bool:
        # dbt Cloud documents no precondition on /cancel/ and answers 200 with the run for an
        # ended one: read the state first rather than trust it to leave a finished run alone.
        return True

    def cancel_accepted(self, reply: HttpReply) -> bool:
        data = reply.json()
        run = data.get("data") if isinstance(data, dict) else None
        status = run.get("status") if isinstance(run, dict) else None
        # The reply carries the run: one still reported Success or Error was not cancelled.
        return reply.ok and status not in (10, 20)

    def active_call(self) -> HttpCall | None:
        return HttpCall("GET", self._runs_query(ACTIVE), self._headers(), purpose="active")

    def parse_active(self, reply: HttpReply) -> list[RunRef]:
        data = reply.json()
        runs = (data.get("data") or []) if isinstance(data, dict) else []
        return [self._ref(r) for r in runs if r.get("status") in ACTIVE]

    def run_url(self, run_id: str) -> str | None:
        base = self.target.base_url.rstrip("/")
        return f"{base}/deploy/{self.target.account_id}/projects/-/runs/{run_id}/"


def _json_list(values: tuple[Any, ...] | list[Any]) -> str:
    """A list query parameter as dbt Cloud's v2 API takes it: one JSON array, URL-encoded
    (``status__in=[1,2,3]``, ``include_related=["trigger"]``, ``pk__in=[7,8]``)."""
    return quote(json.dumps(list(values), separators=(",", ":")), safe="")


def _status(run: Any) -> RunStatus:
    raw = run.get("status") if isinstance(run, dict) else None
    if not isinstance(raw, int) or raw not in STATUS:
        return RunStatus(RunState.UNKNOWN, raw, f"unknown dbt Cloud run status {raw!r}")
    assert isinstance(run, dict)
    msg = STATUS_NAMES[raw]
    if run.get("status_message"):
        msg += f": {run['status_message']}"
    return RunStatus(STATUS[raw], raw, msg, run.get("href"))
