"""Plain webhooks: send the request as given; optional declarative run tracking."""

from __future__ import annotations

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
        # The Idempotency-Key draft (IETF httpapi): 409 means a request with this key was
        # already received. Only asked when the key was sent.
        return reply.status_code == 409

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
        w = self.spec.wait
        assert w.status_path is not None
        raw = dig(reply.json(), w.status_path)
        run_url = dig(reply.json(), w.run_url_path) if w.run_url_path else None
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
