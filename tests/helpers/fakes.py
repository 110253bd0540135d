"""Small stateful fakes of the targets' HTTP APIs, mounted on a ``LocalServer``.

They implement just what trigrun's presets use, with the real APIs' idempotency behaviour:
Airflow REST v2 (JWT from ``/auth/token``, 409 on a duplicate ``dag_run_id``), dbt Cloud v2
(no idempotency: runs listed with their cause), Dagster GraphQL (runs found by tag), Prefect's
REST API (idempotency keys unique per flow, orchestration rules on ``set_state``) and a
webhook that dedups on the ``Idempotency-Key`` header. Thread-safe: handlers run in the
server's threads.

``trigger_delay`` makes the trigger endpoint create the run and then answer late, as a server
does when the client's timeout fires after the work was done.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .contracts import contract, guard
from .fakes_webhook import DedupWebhook
from .httpserver import Handler, LocalServer, Recorded, Reply

__all__ = ["DEP_1", "DEP_A", "DEP_B", "FLOW_1", "DedupWebhook", "FakeAirflow", "FakeDagster",
           "FakeDbtCloud", "FakePrefect", "make_jwt"]

# Prefect's ids are UUIDs (its contract says so).
DEP_1 = "6f0c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a51"
DEP_A = "6f0c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5a"
DEP_B = "6f0c1a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
FLOW_1 = "9e8d7c6b-5a49-4838-a726-150413021f01"


def make_jwt(exp: float, sub: str = "admin", nonce: int = 0) -> str:
    def enc(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{enc({'alg': 'HS512', 'typ': 'JWT'})}.{enc({'sub': sub, 'exp': int(exp), 'n': nonce})}.c2ln"


def _mount(server: LocalServer, fake: str, contract_name: str, prefix: str = ""
           ) -> Callable[[str, str, Handler], None]:
    """``on(method, path, handler)``: a route whose requests and replies are held to the
    target's contract (tests/helpers/contracts.py)."""
    spec = contract(contract_name, prefix)

    def on(method: str, path: str, handler: Handler) -> None:
        server.on(method, path, guard(fake, spec, lambda: server.url, handler))

    return on


@dataclass
class _Run:
    run_id: str
    state: Any
    body: Any = None
    states: list[Any] = field(default_factory=list)  # served by successive status reads


class FakeAirflow:
    """Airflow 3's public REST API (``/api/v2``) for one or more DAGs.

    ``states`` scripts what successive GETs of a run report (the last repeats).
    With ``username``/``password`` set, every API call needs a Bearer JWT from ``/auth/token``;
    ``revoke_tokens()`` makes the tokens issued so far answer 401.
    """

    def __init__(self, server: LocalServer, *, username: str | None = None,
                 password: str | None = None, token_ttl: float = 3600.0,
                 states: list[str] | None = None, trigger_delay: float = 0.0,
                 clock: Any = time.time, api_version: str = "v2") -> None:
        self.server = server
        self.api_version = api_version
        self.username, self.password = username, password
        self.token_ttl = token_ttl
        self.states = states or ["queued"]
        self.trigger_delay = trigger_delay
        self.clock = clock
        self.runs: dict[tuple[str, str], _Run] = {}
        self.valid_tokens: set[str] = set()
        self.token_requests = 0
        self.unauthorized = 0
        self.batch_reads = 0
        self.ended_reads = 0
        self._nonce = itertools.count()
        self._lock = threading.Lock()
        base = f"/api/{api_version}/dags/{{dag_id}}/dagRuns"
        on = _mount(server, f"FakeAirflow({api_version})",
                    "airflow_v2.json" if api_version == "v2" else "airflow_v1.yaml")
        if api_version == "v2":
            on("POST", "/auth/token", self._token)
        on("POST", base, self._trigger)
        on("GET", base, self._list)
        on("GET", base + "/{run_id}", self._get)
        on("PATCH", base + "/{run_id}", self._patch)

    @property
    def base_url(self) -> str:
        return self.server.url

    def revoke_tokens(self) -> None:
        with self._lock:
            self.valid_tokens.clear()

    def add_run(self, dag_id: str, run_id: str, state: str) -> None:
        with self._lock:
            self.runs[(dag_id, run_id)] = _Run(run_id, state, states=[state])

    def _denied(self, req: Recorded) -> Reply | None:
        if self.username is None:
            return None
        auth = req.headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.valid_tokens:
            return None
        self.unauthorized += 1
        return Reply(401, json={"detail": "Not authenticated"})

    def _token(self, req: Recorded) -> Reply:
        data = req.json() or {}
        with self._lock:
            self.token_requests += 1
            if (data.get("username"), data.get("password")) != (self.username, self.password):
                return Reply(401, json={"detail": "Invalid credentials"})
            token = make_jwt(self.clock() + self.token_ttl, nonce=next(self._nonce))
            self.valid_tokens.add(token)
        return Reply(201, json={"access_token": token, "token_type": "bearer"})

    def _run_json(self, dag_id: str, run: _Run) -> dict[str, Any]:
        """A DAG run as Airflow 3.3's DAGRunResponse has it (every required field)."""
        body = run.body or {}
        ended = run.state in ("success", "failed")
        now = "2026-03-16T01:00:00Z"
        return {"dag_run_id": run.run_id, "dag_id": dag_id, "dag_display_name": dag_id,
                "state": run.state, "conf": body.get("conf", {}),
                "logical_date": body.get("logical_date"), "queued_at": now,
                "start_date": None if run.state == "queued" else now,
                "end_date": now if ended else None, "duration": 1.0 if ended else None,
                "data_interval_start": None, "data_interval_end": None, "run_after": now,
                "last_scheduling_decision": None, "run_type": "manual",
                "triggered_by": "rest_api", "triggering_user_name": self.username,
                "note": body.get("note"), "dag_versions": [], "bundle_version": None,
                "partition_key": None, "partition_date": None}

    def _trigger(self, req: Recorded) -> Reply:
        with self._lock:
            if (denied := self._denied(req)) is not None:
                return denied
            body = req.json() or {}
            dag = req.params["dag_id"]
            run_id = body.get("dag_run_id") or f"manual__{len(self.runs)}"
            if (dag, run_id) in self.runs:
                return Reply(409, json={"detail": f"DAG Run with id {run_id} already exists"})
            logical = body.get("logical_date")
            if logical is not None and any(
                    d == dag and (r.body or {}).get("logical_date") == logical
                    for (d, _), r in self.runs.items()):
                # A DAG has one run per logical date (a null logical date is never a clash).
                return Reply(409, json={"detail": f"DAG Run with logical date {logical} "
                                                  "already exists"})
            run = _Run(run_id, self.states[0], body, list(self.states))
            self.runs[(dag, run_id)] = run
            payload = self._run_json(dag, run)
        return Reply(200, json=payload, delay=self.trigger_delay)

    def _get(self, req: Recorded) -> Reply:
        with self._lock:
            if (denied := self._denied(req)) is not None:
                return denied
            dag, rid = req.params["dag_id"], req.params["run_id"]
            run = self.runs.get((dag, rid))
            if run is None:
                return Reply(404, json={"detail": f"DagRun {rid} not found"})
            if run.states:
                run.state = run.states.pop(0) if len(run.states) > 1 else run.states[0]
            return Reply(200, json=self._run_json(dag, run))

    def _list(self, req: Recorded) -> Reply:
        with self._lock:
            if (denied := self._denied(req)) is not None:
                return denied
            dag = req.params["dag_id"]
            wanted = set(req.query.get("state", []))
            if "end_date_gte" in req.query:  # the runs that ended (no end times kept here)
                self.ended_reads += 1
                ended = [self._run_json(d, r) for (d, _), r in self.runs.items()
                         if d == dag and r.state in ("success", "failed")]
                offset = int(req.query.get("offset", ["0"])[0])
                limit = int(req.query.get("limit", ["100"])[0])
                return Reply(200, json={"dag_runs": ended[offset:offset + limit],
                                        "total_entries": len(ended)})
            paged = "offset" in req.query  # trigrun's batched status read
            if paged:
                self.batch_reads += 1
                for (d, _), r in self.runs.items():  # a list read is a read of every run
                    if d == dag and r.states:
                        r.state = r.states.pop(0) if len(r.states) > 1 else r.states[0]
            runs = [self._run_json(d, r) for (d, _), r in self.runs.items()
                    if d == dag and (not wanted or r.state in wanted)]
            total = len(runs)
            if paged:
                offset = int(req.query["offset"][0])
                runs = runs[offset:offset + int(req.query.get("limit", ["100"])[0])]
        return Reply(200, json={"dag_runs": runs, "total_entries": total})

    def _patch(self, req: Recorded) -> Reply:
        with self._lock:
            if (denied := self._denied(req)) is not None:
                return denied
            run = self.runs.get((req.params["dag_id"], req.params["run_id"]))
            if run is None:
                return Reply(404, json={"detail": "not found"})
            run.state = (req.json() or {}).get("state", run.state)
            run.states = [run.state]
            return Reply(200, json=self._run_json(req.params["dag_id"], run))


def _dbt_list(req: Recorded, name: str) -> list[Any] | None:
    """A list query parameter as dbt Cloud decodes it: one JSON array (``[1,2]``), or the
    parameter repeated; None when absent."""
    values = req.query.get(name)
    if not values:
        return None
    if len(values) == 1 and values[0].startswith("["):
        decoded = json.loads(values[0])
        return list(decoded) if isinstance(decoded, list) else [decoded]
    return list(values)


class FakeDbtCloud:
    """dbt Cloud's v2 API for one account and job. No idempotency of its own.

    As dbt Cloud does: a run's ``trigger`` object (where the ``cause`` is) is in a listed run
    only when the request asks for it (``include_related=["trigger"]``); otherwise the run has
    its ``trigger_id`` only. The runs list filters by ``job_definition_id``, ``status__in``
    and ``pk__in`` (JSON arrays) and pages with ``limit``/``offset``.
    """

    def __init__(self, server: LocalServer, *, account_id: int = 1, job_id: int = 42,
                 trigger_delay: float = 0.0, statuses: list[int] | None = None) -> None:
        self.server = server
        self.account_id, self.job_id = account_id, job_id
        self.trigger_delay = trigger_delay
        self.statuses = statuses or [1]
        self.runs: list[dict[str, Any]] = []
        self.batch_reads = 0
        self.id_reads = 0  # list reads by run id (pk__in)
        self._scripts: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        acct = f"/api/v2/accounts/{account_id}"
        on = _mount(server, "FakeDbtCloud", "dbt_cloud.yaml")
        on("POST", f"{acct}/jobs/{job_id}/run/", self._trigger)
        on("GET", f"{acct}/runs/", self._list)
        on("GET", f"{acct}/runs/{{run_id}}/", self._get)
        on("POST", f"{acct}/runs/{{run_id}}/cancel/", self._cancel)

    @property
    def base_url(self) -> str:
        return self.server.url

    def _shown(self, run: dict[str, Any], related: list[Any]) -> dict[str, Any]:
        """A run as the API shows it: ``trigger`` only when asked for."""
        out = {k: v for k, v in run.items() if k != "trigger"}
        if "trigger" in related:
            out["trigger"] = dict(run["trigger"])
        return out

    def _trigger(self, req: Recorded) -> Reply:
        body = req.json() or {}
        with self._lock:
            run_id = 1000 + len(self.runs)
            run: dict[str, Any] = {
                "id": run_id, "trigger_id": 5000 + len(self.runs), "account_id": self.account_id,
                "job_definition_id": self.job_id, "status": self.statuses[0],
                "status_message": None, "trigger": {"id": 5000 + len(self.runs),
                                                    "cause": body.get("cause")},
                "href": f"{self.server.url}/runs/{run_id}"}
            self.runs.append(run)
            self._scripts[run["id"]] = list(self.statuses)
            # The trigger endpoint answers with the run and its trigger.
            payload = {"data": self._shown(run, ["trigger"]), "status": {"code": 200}}
        return Reply(200, json=payload, delay=self.trigger_delay)

    def _list(self, req: Recorded) -> Reply:
        with self._lock:
            related = _dbt_list(req, "include_related") or []
            pks = _dbt_list(req, "pk__in")
            paged = "offset" in req.query  # trigrun's batched status read
            if paged or pks is not None:
                if paged:
                    self.batch_reads += 1
                else:
                    self.id_reads += 1
                for run in self.runs:  # a list read is a read of every run
                    script = self._scripts[run["id"]]
                    run["status"] = script.pop(0) if len(script) > 1 else script[0]
            asc = req.query.get("order_by", ["-id"])[0] == "id"
            runs = sorted(self.runs, key=lambda r: r["id"] if asc else -r["id"])
            if "job_definition_id" in req.query:
                job = int(req.query["job_definition_id"][0])
                runs = [r for r in runs if r["job_definition_id"] == job]
            if pks is not None:
                wanted_ids = {int(p) for p in pks}
                runs = [r for r in runs if r["id"] in wanted_ids]
            statuses = _dbt_list(req, "status__in")
            if statuses is not None:
                wanted = {int(x) for x in statuses}
                runs = [r for r in runs if r["status"] in wanted]
            total = len(runs)
            offset = int(req.query.get("offset", ["0"])[0])
            runs = runs[offset:offset + int(req.query.get("limit", ["100"])[0])]
            return Reply(200, json={"data": [self._shown(r, related) for r in runs],
                                    "extra": {"pagination": {"count": len(runs),
                                                             "total_count": total}},
                                    "status": {"code": 200}})

    def _find(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.runs if str(r["id"]) == run_id), None)

    def _get(self, req: Recorded) -> Reply:
        with self._lock:
            run = self._find(req.params["run_id"])
            if run is None:
                return Reply(404, json={"status": {"code": 404}})
            script = self._scripts[run["id"]]
            run["status"] = script.pop(0) if len(script) > 1 else script[0]
            related = _dbt_list(req, "include_related") or []
            return Reply(200, json={"data": self._shown(run, related), "status": {"code": 200}})

    def _cancel(self, req: Recorded) -> Reply:
        with self._lock:
            run = self._find(req.params["run_id"])
            if run is None:
                return Reply(404, json={"status": {"code": 404}})
            run["status"] = 30
            self._scripts[run["id"]] = [30]
            return Reply(200, json={"data": self._shown(run, []), "status": {"code": 200}})


class FakeDagster:
    """Dagster's GraphQL API: ``launchRun``, ``runsOrError`` (by tag or status),
    ``runOrError``, ``terminateRun``; told apart by the operation name trigrun sends."""

    def __init__(self, server: LocalServer, *, trigger_delay: float = 0.0,
                 statuses: list[str] | None = None) -> None:
        self.server = server
        self.trigger_delay = trigger_delay
        self.statuses = statuses or ["QUEUED"]
        self.runs: list[dict[str, Any]] = []
        self.batch_reads = 0
        self._lock = threading.Lock()
        _mount(server, "FakeDagster", "dagster.graphql")("POST", "/graphql", self._graphql)

    @property
    def base_url(self) -> str:
        return self.server.url

    def _find(self, run_id: Any) -> dict[str, Any] | None:
        return next((r for r in self.runs if r["runId"] == run_id), None)

    def _graphql(self, req: Recorded) -> Reply:
        body = req.json() or {}
        query, variables = body.get("query", ""), body.get("variables") or {}
        with self._lock:
            if "launchRun" in query:
                params = variables["executionParams"]
                tags = {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
                run = {"runId": f"run-{len(self.runs) + 1}", "status": self.statuses[0],
                       "jobName": params["selector"]["jobName"], "tags": tags,
                       "script": list(self.statuses)}
                self.runs.append(run)
                data = {"launchRun": {"__typename": "LaunchRunSuccess",
                                      "run": {"runId": run["runId"], "status": run["status"]}}}
                return Reply(200, json={"data": data}, delay=self.trigger_delay)
            if "runsOrError" in query and "runIds" in (variables.get("filter") or {}):
                self.batch_reads += 1
                ids = variables["filter"]["runIds"]
                results = []
                for rid in ids:
                    found = self._find(rid)
                    if found is not None:
                        script = found["script"]
                        found["status"] = script.pop(0) if len(script) > 1 else script[0]
                        results.append({"runId": found["runId"], "status": found["status"]})
                results = results[:variables.get("limit") or len(results)]
                return Reply(200, json={"data": {"runsOrError": {"__typename": "Runs",
                                                                 "results": results}}})
            if "runsOrError" in query:
                flt = variables.get("filter") or {}
                want_tags = {t["key"]: t["value"] for t in flt.get("tags") or []}
                runs = [r for r in self.runs
                        if all(r["tags"].get(k) == v for k, v in want_tags.items())
                        and (not flt.get("statuses") or r["status"] in flt["statuses"])
                        and (not flt.get("pipelineName") or r["jobName"] == flt["pipelineName"])]
                results = [{"runId": r["runId"], "status": r["status"]} for r in runs]
                return Reply(200, json={"data": {"runsOrError": {"__typename": "Runs",
                                                                 "results": results}}})
            if "runOrError" in query:
                found = self._find(variables.get("runId"))
                if found is None:
                    node = {"__typename": "RunNotFoundError", "message": "run not found"}
                else:
                    script = found["script"]
                    found["status"] = script.pop(0) if len(script) > 1 else script[0]
                    node = {"__typename": "Run", "runId": found["runId"],
                            "status": found["status"]}
                return Reply(200, json={"data": {"runOrError": node}})
            if "terminateRun" in query:
                found = self._find(variables.get("runId"))
                if found is not None:
                    found["status"], found["script"] = "CANCELED", ["CANCELED"]
                return Reply(200, json={"data": {"terminateRun": {
                    "__typename": "TerminateRunSuccess", "run": {"runId": variables.get("runId")}}}})
        return Reply(200, json={"errors": [{"message": f"unsupported query: {query[:60]}"}]})


_NOW = "2026-03-16T01:00:00Z"


def _prefect_state(kind: str, name: str | None = None, message: str | None = None
                   ) -> dict[str, Any]:
    """A state as Prefect's State schema has it (an id of its own, a timestamp)."""
    return {"id": str(uuid.uuid4()), "type": kind, "name": name or kind.title(),
            "timestamp": _NOW, "message": message, "state_details": {}}


class FakePrefect:
    """Prefect 3's REST API under ``/api``: deployments' ``create_flow_run``, ``flow_runs/{id}``,
    ``set_state`` and ``flow_runs/filter``.

    As Prefect does: an ``idempotency_key`` is unique per *flow* (``deployments`` maps each
    deployment id to its flow id; two deployments may share a flow), a repeated key answers
    200 with the existing run (201 when created); ``set_state`` without ``force`` applies the
    orchestration rule that an ended run cannot be moved (``ABORT``, state unchanged, HTTP 200),
    while ``force: true`` sets any state (HTTP 201, ``ACCEPT``).
    """

    TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

    def __init__(self, server: LocalServer, *, deployments: dict[str, str] | None = None,
                 state: str = "SCHEDULED", states: list[str] | None = None) -> None:
        self.server = server
        self.deployments = deployments or {DEP_1: FLOW_1}
        self.initial_state = state
        # ``states``: what successive reads of a new run report (GET or batch; the last repeats).
        self.states = states
        self.batch_reads = 0
        self._scripts: dict[str, list[str]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.set_state_bodies: list[Any] = []
        self._lock = threading.Lock()
        on = _mount(server, "FakePrefect", "prefect.json", "/api")
        on("POST", "/api/deployments/{dep}/create_flow_run", self._create)
        on("GET", "/api/flow_runs/{run_id}", self._get)
        on("POST", "/api/flow_runs/{run_id}/set_state", self._set_state)
        on("POST", "/api/flow_runs/filter", self._filter)

    @property
    def api_url(self) -> str:
        return self.server.url + "/api"

    def set_run_state(self, run_id: str, state_type: str, *,
                      infrastructure_pid: str | None = None) -> None:
        """Set a run's state; a worker that picked the run up gives it an infrastructure pid."""
        with self._lock:
            run = self.runs[run_id]
            run["state"] = _prefect_state(state_type)
            if infrastructure_pid is not None:
                run["infrastructure_pid"] = infrastructure_pid

    def state_of(self, run_id: str) -> str:
        with self._lock:
            return str(self.runs[run_id]["state"]["type"])

    def _create(self, req: Recorded) -> Reply:
        body = req.json() or {}
        dep = req.params["dep"]
        with self._lock:
            flow = self.deployments.get(dep)
            if flow is None:
                return Reply(404, json={"detail": "Deployment not found"})
            key = body.get("idempotency_key")
            if key is not None:
                for run in self.runs.values():
                    if run["flow_id"] == flow and run["idempotency_key"] == key:
                        return Reply(200, json=dict(run))
            run_id = str(uuid.UUID(int=len(self.runs) + 1))
            run = {"id": run_id, "flow_id": flow, "deployment_id": dep,
                   "idempotency_key": key, "infrastructure_pid": None, "parameters": body.get("parameters") or {},
                   "state": _prefect_state(self.initial_state),
                   "created": _NOW, "updated": _NOW, "name": f"fake-run-{len(self.runs) + 1}",
                   "tags": body.get("tags") or []}
            self.runs[run_id] = run
            if self.states:
                self._scripts[run_id] = list(self.states)
            return Reply(201, json=dict(run))

    def _read(self, run: dict[str, Any]) -> dict[str, Any]:
        script = self._scripts.get(run["id"])
        if script:
            kind = script.pop(0) if len(script) > 1 else script[0]
            run["state"] = _prefect_state(kind)
        return dict(run)

    def _get(self, req: Recorded) -> Reply:
        with self._lock:
            run = self.runs.get(req.params["run_id"])
            if run is None:
                return Reply(404, json={"detail": "Flow run not found"})
            return Reply(200, json=self._read(run))

    def _set_state(self, req: Recorded) -> Reply:
        body = req.json() or {}
        with self._lock:
            self.set_state_bodies.append(body)
            run = self.runs.get(req.params["run_id"])
            if run is None:
                return Reply(404, json={"detail": "Flow run not found"})
            proposed = body.get("state") or {}
            current = run["state"]["type"]
            to = proposed.get("type")
            if not body.get("force"):
                if current in self.TERMINAL:
                    return Reply(200, json={"status": "ABORT", "state": None, "details": {
                        "type": "abort_details",
                        "reason": f"This run is in terminal state {current}."}})
                if to == "CANCELLING" and (
                        (current == "SCHEDULED" and not run.get("infrastructure_pid"))
                        or (current == "PAUSED" and run["state"].get("pause_reschedule"))):
                    # Prefect's BypassCancellingFlowRunsWithNoInfra: nothing to tear down,
                    # so the run is cancelled at once and the proposal answered REJECT.
                    run["state"] = _prefect_state("CANCELLED")
                    self._scripts.pop(run["id"], None)
                    return Reply(200, json={"status": "REJECT", "state": dict(run["state"]),
                                            "details": {"type": "reject_details", "reason":
                                                        "Scheduled flow run has no "
                                                        "infrastructure to terminate."}})
                if to == current:
                    return Reply(200, json={"status": "REJECT", "state": dict(run["state"]),
                                            "details": {"type": "reject_details",
                                                        "reason": "already in this state"}})
            run["state"] = _prefect_state(str(to), proposed.get("name"),
                                          proposed.get("message"))
            self._scripts.pop(run["id"], None)
            return Reply(201, json={"status": "ACCEPT", "state": dict(run["state"]),
                                    "details": {"type": "accept_details"}})

    def _filter(self, req: Recorded) -> Reply:
        body = req.json() or {}
        deps = (((body.get("deployments") or {}).get("id") or {}).get("any_")) or []
        types = ((((body.get("flow_runs") or {}).get("state") or {}).get("type") or {})
                 .get("any_")) or []
        ids = (((body.get("flow_runs") or {}).get("id") or {}).get("any_"))
        with self._lock:
            if ids is not None:  # trigrun's batched status read
                self.batch_reads += 1
                found = [self._read(self.runs[i]) for i in ids if i in self.runs]
                return Reply(200, json=found[:body.get("limit") or 200])
            runs = [dict(r) for r in self.runs.values()
                    if (not deps or r["deployment_id"] in deps)
                    and (not types or r["state"]["type"] in types)]
        return Reply(200, json=runs)
