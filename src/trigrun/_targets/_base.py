"""What every target preset is: pure functions that build requests and read replies."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._models import JobSpec
from .._results import RunState
from .._upstream import Upstream

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass(frozen=True)
class HttpCall:
    """A request to send. Strings may still hold ``secret://`` references; the engine resolves
    them and applies the job's auth just before sending."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: str | None = None
    purpose: str = "trigger"


@dataclass(frozen=True)
class HttpReply:
    status_code: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    truncated: bool = False

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The parsed JSON body, or None when the body is not JSON. Parsed once."""
        try:
            return self.__dict__["_json"]
        except KeyError:
            pass
        try:
            data = json.loads(self.body) if self.body else None
        except (ValueError, UnicodeDecodeError):
            data = None
        self.__dict__["_json"] = data  # a cache, not a field: the reply stays frozen
        return data

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass(frozen=True)
class RunRef:
    run_id: str
    run_url: str | None = None
    state: RunState | None = None


@dataclass(frozen=True)
class RunStatus:
    state: RunState
    raw: Any
    message: str = ""
    run_url: str | None = None


class PresetError(Exception):
    """A reply the preset cannot accept (e.g. a GraphQL error). Never retried."""


def dig(obj: Any, path: str) -> Any:
    """``dig({"a": {"b": [1, 2]}}, "a.b.1") == 2``; None when the path is missing."""
    cur = obj
    for part in path.split("."):
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            idx = int(part)
            cur = cur[idx] if -len(cur) <= idx < len(cur) else None
        else:
            return None
        if cur is None:
            return None
    return cur


class Preset:
    """Base class: a preset is built for one (already rendered) spec.

    Subclasses override what their target supports. ``None`` from a ``*_call`` method means
    "not supported by this target".
    """

    name = "base"

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.target = spec.resolved_target()

    # -- helpers ---------------------------------------------------------------------------
    def base_headers(self) -> dict[str, str]:
        """Headers for follow-up calls: the raw request's (auth included), minus its body type."""
        if self.spec.request is None:
            return {"Accept": "application/json"}
        return {k: v for k, v in self.spec.request.headers.items()
                if k.lower() not in ("content-type", "content-length", "idempotency-key")}

    def raw_trigger_call(self, body: Any = None, extra_headers: Mapping[str, str] | None = None) -> HttpCall:
        req = self.spec.request
        assert req is not None
        headers = dict(req.headers)
        if extra_headers:
            headers.update(extra_headers)
        body = req.body if body is None else body
        if isinstance(body, str):
            return HttpCall(req.method, req.url, headers, content=body)
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return HttpCall(req.method, req.url, headers, json=body)

    # -- the contract ----------------------------------------------------------------------
    @property
    def supports_wait(self) -> bool:
        return True

    def trigger_call(self, key: str | None, scheduled_iso: str, *,
                     upstream: Upstream | None = None) -> HttpCall:
        """The trigger request. ``upstream`` (already redacted; None when the job's
        ``link_upstream`` is off) goes in as the target names who started a run
        (docs/upstream.md); it never changes what identifies the fire (the key)."""
        raise NotImplementedError

    def parse_trigger(self, reply: HttpReply) -> RunRef | None:
        raise NotImplementedError

    def is_conflict(self, reply: HttpReply) -> bool:
        """The target refused because this fire already happened (adopt, do not retry)."""
        return False

    def is_replay(self, reply: HttpReply) -> bool:
        """A 2xx that repeats the answer to an earlier request with the same idempotency key
        (Stripe-style ``Idempotent-Replayed: true``): this fire already happened."""
        return reply.headers.get("idempotent-replayed", "").strip().lower() == "true"

    def conflict_pending(self, reply: HttpReply) -> bool:
        """The conflict says a request with this key is still being processed and names no
        run (the Idempotency-Key draft's 409): retried under the retry policy (backoff,
        ``Retry-After``) instead of adopted, until a reply names the run."""
        return False

    def conflict_needs_run(self) -> bool:
        """Whether a fire must end with a run id (the job tracks its run): when the retries
        of a pending conflict run out, such a fire fails; otherwise "already received" is
        its answer."""
        return False

    def conflict_hint(self, reply: HttpReply) -> str | None:
        """Why a conflict could not be adopted and what to do, for the error message."""
        return None

    def adopt_call(self, key: str) -> HttpCall | None:
        """How to read the run a conflict refers to; None: the conflict reply is all we get."""
        return None

    def parse_conflict(self, reply: HttpReply) -> RunRef | None:
        """The run named in a conflict reply, when ``adopt_call`` is None."""
        return None

    def lookup_call(self, key: str) -> HttpCall | None:
        return None

    def parse_lookup(self, reply: HttpReply, key: str) -> RunRef | None:
        return None

    def status_call(self, run_id: str) -> HttpCall:
        raise NotImplementedError

    def parse_status(self, reply: HttpReply) -> RunStatus:
        raise NotImplementedError

    def cancel_call(self, run_id: str) -> HttpCall | None:
        return None

    @property
    def cancel_checks_status(self) -> bool:
        """True when the cancel call would overwrite a run that already ended (Airflow's
        ``PATCH state=failed`` turns a succeeded run failed): the run's state must be read
        first, and a run that ended is left alone. False when the target itself refuses to
        cancel an ended run."""
        return False

    def cancel_accepted(self, reply: HttpReply) -> bool:
        """Whether the target took the cancel. A 2xx alone is not enough where the target
        answers a refusal with 200 (Prefect's ``ABORT``, Dagster's ``TerminateRunFailure``)."""
        return reply.ok

    def active_call(self) -> HttpCall | None:
        return None

    def parse_active(self, reply: HttpReply) -> list[RunRef]:
        return []

    def run_url(self, run_id: str) -> str | None:
        return None

    # -- batched status polls (the async engine's poll groups) --------------------------------
    def batch_key(self) -> Any:
        """None: the target has no batch status API, so every wait polls its own run. Else a
        hashable scope the batched request covers (an origin plus a DAG, an account's job, a
        GraphQL endpoint, an API root). The engine adds the job's auth and connection settings,
        so waits share a group only when one request can stand for all of them."""
        return None

    def batch_calls(self, run_ids: list[str]) -> list[HttpCall]:
        """The batched status requests (pages) that cover ``run_ids``."""
        raise NotImplementedError

    @property
    def batch_lists(self) -> bool:
        """True when the batched request lists the scope's active runs (paged by offset, as
        ``batch_page``) rather than the runs asked for: its cost does not shrink with fewer
        waits, so the engine reads it once per poll interval, every page."""
        return False

    def batch_page(self, offset: int) -> HttpCall:
        """The page of the active-run listing that starts at ``offset`` (``batch_lists``)."""
        raise NotImplementedError

    def batch_ended_page(self, since: datetime, offset: int) -> HttpCall | None:
        """The page at ``offset`` of the scope's runs that ended at or after ``since``, for a
        listing: the runs that left the active listing are read from it, not one by one.
        None: the target cannot list them."""
        return None

    def batch_ended_calls(self, run_ids: list[str]) -> list[HttpCall] | None:
        """The requests (one per page) that read the given runs by id, for a listing whose
        target can filter by id: the runs that left the active listing are read from them.
        None: not possible (``batch_ended_page`` is used instead, when the target has it)."""
        return None

    def batch_total(self, reply: HttpReply) -> int | None:
        """How many runs the whole listing holds, from one page's reply (None: not said)."""
        return None

    def parse_batch(self, reply: HttpReply, run_ids: list[str]) -> dict[str, RunStatus]:
        """The states of the runs one reply shows, by run id. A run the reply does not show is
        absent (the engine reads it on its own); a reply that cannot be read is a
        ``PresetError``."""
        raise NotImplementedError

    def auth_base_url(self) -> str | None:
        """Where ``/auth/token`` lives, for the ``airflow_password`` auth."""
        return None
