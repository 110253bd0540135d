"""Plain webhooks: send the request as given; optional declarative run tracking."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .._results import RunState
from .._upstream import Upstream
from ._base import HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus, dig


class WebhookPreset(Preset):
    name = "webhook"

    @property
    def supports_wait(self) -> bool:
        return self.spec.wait.status_url is not None

    def trigger_call(self, key: str | None, scheduled_iso: str, *,
                     upstream: Upstream | None = None) -> HttpCall:
        # A webhook's body is the receiver's own format, unknown to trigrun: nothing is added.
        del upstream
        extra = {}
        req = self.spec.request
        assert req is not None
        if key and not any(k.lower() == "idempotency-key" for k in req.headers):
            extra["Idempotency-Key"] = key
        return self.raw_trigger_call(extra_headers=extra)

    def parse_trigger(self, reply: HttpReply) -> RunRef | None:
        w = self.spec.wait
        if not w.run_id_path:
            return None
        run_id = dig(reply.json(), w.run_id_path)
        if run_id is None:
            if w.status_url and "{run_id}" in w.status_url:
                raise PresetError(f"no run id at wait.run_id_path {w.run_id_path!r} in the "
                                  "trigger response; check the path against the response")
            return None
        run_url = dig(reply.json(), w.run_url_path) if w.run_url_path else None
        return RunRef(str(run_id), str(run_url) if run_url else None)

    def is_conflict(self, reply: HttpReply) -> bool:
        # The Idempotency-Key draft (IETF httpapi): 409 means a request with this key is
        # still being processed. Only asked when the key was sent.
        return reply.status_code == 409

    def conflict_pending(self, reply: HttpReply) -> bool:
        # A 409 is "still being processed: retry", not "done": only a reply that names the
        # run (a replay, or a 409 body that carries it at wait.run_id_path) is adopted.
        return reply.status_code == 409 and self.parse_conflict(reply) is None

    def conflict_needs_run(self) -> bool:
        return bool(self.spec.wait.run_id_path)

    def parse_conflict(self, reply: HttpReply) -> RunRef | None:
        try:
            return self.parse_trigger(reply)
        except PresetError:
            return None

    def _url(self, template: str, run_id: str) -> str:
        return template.replace("{run_id}", quote(run_id, safe=""))

    def status_call(self, run_id: str) -> HttpCall:
        assert self.spec.wait.status_url is not None
        return HttpCall("GET", self._url(self.spec.wait.status_url, run_id), self.base_headers(),
                        purpose="status")

    def parse_status(self, reply: HttpReply) -> RunStatus:
        return self._status_of(reply.json())

    def _status_of(self, data: Any) -> RunStatus:
        w = self.spec.wait
        assert w.status_path is not None
        raw = dig(data, w.status_path)
        run_url = dig(data, w.run_url_path) if w.run_url_path else None
        value = str(raw).lower() if raw is not None else None
        for values, state in ((w.success_values, RunState.SUCCESS),
                              (w.failure_values, RunState.FAILED),
                              (w.cancelled_values, RunState.CANCELLED),
                              (w.running_values, RunState.RUNNING)):
            if value is not None and value in (v.lower() for v in values):
                return RunStatus(state, raw, f"status {raw!r}", str(run_url) if run_url else None)
        if raw is None:
            msg = (f"no status at wait.status_path {w.status_path!r} in the status response; "
                   "check the path")
        else:
            msg = (f"unknown status {raw!r} at {w.status_path!r}; add it to wait.success_values, "
                   "failure_values, cancelled_values or running_values")
        return RunStatus(RunState.UNKNOWN, raw, msg)

    # -- batched status polls: wait.batch_status_url --------------------------------------
    def batch_key(self) -> Any:
        url = self.spec.wait.batch_status_url
        return ("webhook", url) if url else None

    def batch_calls(self, run_ids: list[str]) -> list[HttpCall]:
        w = self.spec.wait
        assert w.batch_status_url is not None
        size = w.batch_size
        return [HttpCall("GET", w.batch_status_url.replace(
                    "{run_ids}", ",".join(quote(r, safe="") for r in run_ids[i:i + size])),
                    self.base_headers(), purpose="status")
                for i in range(0, len(run_ids), size)]

    def parse_batch(self, reply: HttpReply, run_ids: list[str]) -> dict[str, RunStatus]:
        w = self.spec.wait
        data = reply.json()
        items = dig(data, w.batch_runs_path) if w.batch_runs_path else data
        if not isinstance(items, list):
            where = f"at wait.batch_runs_path {w.batch_runs_path!r}" if w.batch_runs_path \
                else "(the reply itself; set wait.batch_runs_path if the list is nested)"
            raise PresetError(f"the batch status reply has no list of runs {where}")
        found: dict[str, RunStatus] = {}
        for item in items:
            rid = dig(item, w.batch_id_path) if isinstance(item, dict) else None
            if rid is not None:
                found[str(rid)] = self._status_of(item)
        return found

    @property
    def cancel_checks_status(self) -> bool:
        # What the cancel URL does to an ended run is the service's business: when its status
        # can be read, a run that ended is not sent a cancel at all.
        return self.supports_wait

    def cancel_call(self, run_id: str) -> HttpCall | None:
        if not self.spec.wait.cancel_url:
            return None
        return HttpCall("POST", self._url(self.spec.wait.cancel_url, run_id), self.base_headers(),
                        purpose="cancel")
