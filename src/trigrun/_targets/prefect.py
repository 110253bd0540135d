"""Prefect's REST API: create a flow run from a deployment with an ``idempotency_key``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._models import PrefectTarget
from .._results import RunState
from .._upstream import Upstream
from ._base import JSON_HEADERS, HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus

STATES = {
    "SCHEDULED": RunState.QUEUED,
    "PENDING": RunState.QUEUED,
    "PAUSED": RunState.RUNNING,
    "RUNNING": RunState.RUNNING,
    "CANCELLING": RunState.RUNNING,
    "COMPLETED": RunState.SUCCESS,
    "FAILED": RunState.FAILED,
    "CRASHED": RunState.FAILED,
    "CANCELLED": RunState.CANCELLED,
}
# At most 200 (PREFECT_API_DEFAULT_LIMIT); 100 flow runs of ~2.5 KB stay well under the
# engine's read limit.
BATCH_SIZE = 100
# Flow run names are free text; kept short enough to read in the runs list.
NAME_MAX = 200
# "Active" means not ended, the same for every preset (docs/idempotency.md): every state type
# but the terminal ones.
ACTIVE = ["SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"]


class PrefectPreset(Preset):
    name = "prefect"
    target: PrefectTarget

    @property
    def base(self) -> str:
        return self.target.base_url.rstrip("/")

    def _headers(self) -> dict[str, str]:
        return {**JSON_HEADERS, **self.base_headers()}

    def trigger_call(self, key: str | None, scheduled_iso: str, *,
                     upstream: Upstream | None = None) -> HttpCall:
        body: dict[str, Any]
        if self.spec.request is not None and isinstance(self.spec.request.body, dict):
            body = dict(self.spec.request.body)
        else:
            body = {"parameters": dict(self.target.parameters)}
        if upstream is not None:
            # A flow run has no note: its name heads the run's page and its tags show
            # beside it (and filter the runs list). A name the job gives itself is kept.
            if not body.get("name"):
                body["name"] = f"from {upstream.name}"[:NAME_MAX]
            tags = body.get("tags")
            tags = list(tags) if isinstance(tags, list) else []
            for tag in ("trigrun", f"trigrun/upstream:{upstream.kind}"):
                if tag not in tags:
                    tags.append(tag)
            if upstream.url:
                tags.append(f"trigrun/upstream_url:{upstream.url}")
            body["tags"] = tags
        if key and "idempotency_key" not in body:
            # Prefect keeps an idempotency key unique per flow, not per deployment: two
            # deployments of one flow fired for the same tick must not share a run.
            body["idempotency_key"] = f"{self.target.deployment_id}:{key}"
        if self.spec.request is not None:
            return self.raw_trigger_call(body=body)
        url = f"{self.base}/deployments/{quote(self.target.deployment_id, safe='')}/create_flow_run"
        return HttpCall("POST", url, self._headers(), json=body)

    def _ref(self, run: Any) -> RunRef:
        if not isinstance(run, dict) or not run.get("id"):
            raise PresetError("the Prefect response has no flow run id")
        state = (run.get("state") or {}).get("type")
        return RunRef(str(run["id"]), self.run_url(str(run["id"])), STATES.get(str(state)))

    def parse_trigger(self, reply: HttpReply) -> RunRef | None:
        return self._ref(reply.json())

    def is_replay(self, reply: HttpReply) -> bool:
        # create_flow_run answers 201 when it created the run and 200 when the idempotency
        # key matched a run it already had.
        return reply.status_code == 200 or super().is_replay(reply)

    def status_call(self, run_id: str) -> HttpCall:
        return HttpCall("GET", f"{self.base}/flow_runs/{quote(run_id, safe='')}", self._headers(),
                        purpose="status")

    def parse_status(self, reply: HttpReply) -> RunStatus:
        return _status(reply.json())

    def batch_key(self) -> Any:
        return ("prefect", self.base)

    def batch_calls(self, run_ids: list[str]) -> list[HttpCall]:
        url, headers = f"{self.base}/flow_runs/filter", self._headers()
        return [HttpCall("POST", url, headers, purpose="status",
                         json={"flow_runs": {"id": {"any_": run_ids[i:i + BATCH_SIZE]}},
                               "limit": len(run_ids[i:i + BATCH_SIZE])})
                for i in range(0, len(run_ids), BATCH_SIZE)]

    def parse_batch(self, reply: HttpReply, run_ids: list[str]) -> dict[str, RunStatus]:
        data = reply.json()
        if not isinstance(data, list):
            raise PresetError("the Prefect flow_runs/filter reply is not a list of flow runs")
        return {str(run["id"]): _status(run) for run in data
                if isinstance(run, dict) and run.get("id") is not None}


    def cancel_call(self, run_id: str) -> HttpCall | None:
        # Never ``force``: forced, Prefect skips its orchestration rules and turns a run that
        # has just COMPLETED into CANCELLED. Unforced, it answers ABORT for an ended run.
        body = {"state": {"type": "CANCELLING", "name": "Cancelling",
                          "message": "cancelled by trigrun"}}
        return HttpCall("POST", f"{self.base}/flow_runs/{quote(run_id, safe='')}/set_state",
                        self._headers(), json=body, purpose="cancel")

    def cancel_accepted(self, reply: HttpReply) -> bool:
        # set_state answers {"status": "ACCEPT" | "REJECT" | "ABORT" | "WAIT", "state": ...}.
        # ACCEPT moved the run to CANCELLING. REJECT carries the state the run is in instead:
        # Prefect cancels a run no worker holds (SCHEDULED, PENDING without infrastructure,
        # PAUSED) straight to CANCELLED, and a run already CANCELLING stays so; both are a
        # cancel carried out. ABORT (an ended run), WAIT, or a REJECT that leaves the run in
        # any other state (e.g. COMPLETED) is a refusal.
        data = reply.json()
        if not reply.ok or not isinstance(data, dict):
            return False
        if data.get("status") == "ACCEPT":
            return True
        state = data.get("state")
        kind = state.get("type") if isinstance(state, dict) else None
        return data.get("status") == "REJECT" and kind in ("CANCELLED", "CANCELLING")

    def active_call(self) -> HttpCall | None:
        body = {"deployments": {"id": {"any_": [self.target.deployment_id]}},
                "flow_runs": {"state": {"type": {"any_": ACTIVE}}}, "limit": 20}
        return HttpCall("POST", f"{self.base}/flow_runs/filter", self._headers(), json=body,
                        purpose="active")

    def parse_active(self, reply: HttpReply) -> list[RunRef]:
        data = reply.json()
        return [self._ref(r) for r in data] if isinstance(data, list) else []

    def run_url(self, run_id: str) -> str | None:
        ui = self.target.ui_url or self.base.removesuffix("/api")
        return f"{ui.rstrip('/')}/runs/flow-run/{run_id}"


_STATUSES: dict[tuple[Any, Any], RunStatus] = {}


def _status(run: Any) -> RunStatus:
    """The RunStatus of a flow run's JSON; shared per (type, name) when there is no message."""
    st = (run.get("state") or {}) if isinstance(run, dict) else {}
    raw = st.get("type")
    state = STATES.get(str(raw))
    if state is None:
        return RunStatus(RunState.UNKNOWN, raw, f"unknown Prefect state type {raw!r}")
    name, message = st.get("name"), st.get("message")
    shared = not message and isinstance(name, (str, type(None)))
    if shared and (hit := _STATUSES.get((raw, name))) is not None:
        return hit
    msg = str(name or raw)
    if message:
        msg += f": {message}"
    status = RunStatus(state, raw, msg)
    if shared and len(_STATUSES) < 256:
        _STATUSES[(raw, name)] = status
    return status
