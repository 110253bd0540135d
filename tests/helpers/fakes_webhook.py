"""A webhook receiver that honours the ``Idempotency-Key`` header (re-exported by
tests/helpers/fakes.py). A webhook has no published contract of its own: its receiver is the
user's; this one follows the IETF Idempotency-Key draft, or Stripe's replay header."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from .httpserver import LocalServer, Recorded, Reply

__all__ = ["DedupWebhook"]


class DedupWebhook:
    """A webhook that starts one run per ``Idempotency-Key``, as the IETF Idempotency-Key
    draft (``mode="409"``) or Stripe (``mode="replay"``) has it.

    ``mode="409"``: while the first request with a key is still being processed (it answers
    ``trigger_delay`` late), a repeat gets ``409 Conflict`` with a problem body that names no
    run (and ``Retry-After`` when ``retry_after`` is set); once it completed, a repeat gets the
    first response again. ``mode="409-run"``: the 409 body names the run (``run_id``).
    ``mode="replay"``: a repeat gets the first response with ``Idempotent-Replayed: true``.
    ``GET {path}/runs/{run_id}`` reads a run's status (``status``, default ``succeeded``).
    """

    def __init__(self, server: LocalServer, path: str = "/hook", *, mode: str = "409",
                 trigger_delay: float = 0.0, retry_after: int | None = None,
                 status: str = "succeeded") -> None:
        self.server = server
        self.path = path
        self.mode = mode
        self.trigger_delay = trigger_delay
        self.retry_after = retry_after
        self.status = status
        self.runs: dict[str, dict[str, Any]] = {}
        self._done_at: dict[str, float] = {}
        self.started = 0
        self.conflicts = 0
        self._lock = threading.Lock()
        server.on("POST", path, self._trigger)
        server.on("GET", path + "/runs/{run_id}", self._status)

    @property
    def url(self) -> str:
        return self.server.url + self.path

    def _trigger(self, req: Recorded) -> Reply:
        key = req.headers.get("idempotency-key")
        with self._lock:
            if key and key in self.runs:
                run = self.runs[key]
                if self.mode == "replay":
                    return Reply(200, json=run, headers={"Idempotent-Replayed": "true"})
                if self.mode == "409-run" or time.monotonic() < self._done_at[key]:
                    self.conflicts += 1
                    problem: dict[str, Any] = {
                        "type": "https://example.com/docs/idempotency/concurrent",
                        "title": "A request with this Idempotency-Key is being processed",
                        "status": 409}
                    if self.mode == "409-run":
                        problem["run_id"] = run["run_id"]
                    headers = {"Content-Type": "application/problem+json"}
                    if self.retry_after is not None:
                        headers["Retry-After"] = str(self.retry_after)
                    return Reply(409, body=json.dumps(problem).encode(), headers=headers)
                return Reply(200, json=run)
            self.started += 1
            run = {"run_id": f"hook-run-{self.started}", "status": "queued"}
            if key:
                self.runs[key] = run
                self._done_at[key] = time.monotonic() + self.trigger_delay
        return Reply(200, json=run, delay=self.trigger_delay)

    def _status(self, req: Recorded) -> Reply:
        rid = req.params["run_id"]
        with self._lock:
            if not any(r["run_id"] == rid for r in self.runs.values()):
                return Reply(404, json={"detail": "no such run"})
        return Reply(200, json={"run_id": rid, "status": self.status})
