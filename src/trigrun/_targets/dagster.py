"""Dagster's GraphQL API: ``launchRun`` with an idempotency tag looked up first,
``runOrError`` for status, ``terminateRun`` to cancel."""

from __future__ import annotations

from typing import Any

from .._models import DagsterTarget
from .._results import RunState
from .._upstream import Upstream
from ._base import JSON_HEADERS, HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus, dig

KEY_TAG = "trigrun/idempotency_key"
UPSTREAM_TAG = "trigrun/upstream"
UPSTREAM_URL_TAG = "trigrun/upstream_url"
LAUNCHED_BY_TAG = "user"
STATES = {
    "QUEUED": RunState.QUEUED,
    "NOT_STARTED": RunState.QUEUED,
    "MANAGED": RunState.RUNNING,
    "STARTING": RunState.RUNNING,
    "STARTED": RunState.RUNNING,
    # Dagster 1.13: started and waiting on external work with no run worker, on purpose
    # (DagsterRunStatus.SUSPENDED, "in progress" in Dagster's own grouping). Not ended.
    "SUSPENDED": RunState.RUNNING,
    "CANCELING": RunState.RUNNING,
    "SUCCESS": RunState.SUCCESS,
    "FAILURE": RunState.FAILED,
    "CANCELED": RunState.CANCELLED,
}
# "Active" means not ended, the same for every preset (docs/idempotency.md): every status
# but SUCCESS, FAILURE and CANCELED, CANCELING and MANAGED included. SUSPENDED is the one left
# out of this filter: a Dagster server older than 1.13 rejects the whole query for a
# RunStatus value it does not know, which would break overlap checks there.
ACTIVE = ["QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"]

LAUNCH = """mutation TrigrunLaunch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}"""
RUNS = """query TrigrunRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 20) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}"""
STATUS = """query TrigrunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status }
    ... on Error { message }
  }
}"""
# One query for many runs (RunsFilter.runIds); the limit is the page size, so every run asked
# for can come back.
BATCH = """query TrigrunBatchStatus($filter: RunsFilter!, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}"""
BATCH_SIZE = 100
TERMINATE = """mutation TrigrunTerminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on TerminateRunSuccess { run { runId } }
    ... on Error { message }
  }
}"""


class DagsterPreset(Preset):
    name = "dagster"
    target: DagsterTarget

    @property
    def base(self) -> str:
        return self.target.base_url.rstrip("/")

    def _gql(self, query: str, variables: dict[str, Any], purpose: str) -> HttpCall:
        return HttpCall("POST", self._gql_url(), {**JSON_HEADERS, **self.base_headers()},
                        json={"query": query, "variables": variables}, purpose=purpose)

    @staticmethod
    def _data(reply: HttpReply, field: str) -> Any:
        data = reply.json()
        if not isinstance(data, dict):
            raise PresetError("the Dagster GraphQL reply is not JSON")
        if data.get("errors"):
            msgs = "; ".join(str(e.get("message")) for e in data["errors"])
            raise PresetError(f"Dagster GraphQL error: {msgs}")
        node = dig(data, f"data.{field}")
        if not isinstance(node, dict):
            raise PresetError(f"the Dagster GraphQL reply has no data.{field}")
        return node

    def trigger_call(self, key: str | None, scheduled_iso: str, *,
                     upstream: Upstream | None = None) -> HttpCall:
        links = _upstream_tags(upstream)
        if self.spec.request is not None:
            body = self.spec.request.body
            assert isinstance(body, dict)
            if key:
                body = _with_tags(body, {KEY_TAG: key})
            if links:
                body = _with_tags(body, links, keep=True)
            return self.raw_trigger_call(body=body)
        t = self.target
        tags = [{"key": k, "value": v} for k, v in t.tags.items()]
        if key:
            tags.append({"key": KEY_TAG, "value": key})
        # Tags the job sets itself win over the upstream's.
        tags += [{"key": k, "value": v} for k, v in links.items() if k not in t.tags]
        selector: dict[str, Any] = {"repositoryName": t.repository_name, "jobName": t.job_name}
        if t.repository_location_name:
            selector["repositoryLocationName"] = t.repository_location_name
        params = {"selector": selector, "runConfigData": t.run_config,
                  "executionMetadata": {"tags": tags}}
        return self._gql(LAUNCH, {"executionParams": params}, "trigger")

    def parse_trigger(self, reply: HttpReply) -> RunRef | None:
        node = self._data(reply, "launchRun")
        if node.get("__typename") != "LaunchRunSuccess":
            errs = "; ".join(str(e.get("message")) for e in node.get("errors") or [])
            raise PresetError(f"Dagster refused the launch: {node.get('__typename')}: "
                              f"{node.get('message') or errs}")
        run_id = str(dig(node, "run.runId"))
        return RunRef(run_id, self.run_url(run_id), STATES.get(str(dig(node, "run.status"))))

    def lookup_call(self, key: str) -> HttpCall | None:
        return self._gql(RUNS, {"filter": {"tags": [{"key": KEY_TAG, "value": key}]}}, "lookup")

    def parse_lookup(self, reply: HttpReply, key: str) -> RunRef | None:
        try:
            node = self._data(reply, "runsOrError")
        except PresetError:
            return None
        for run in node.get("results") or []:
            rid = str(run["runId"])
            return RunRef(rid, self.run_url(rid), STATES.get(str(run.get("status"))))
        return None

    def status_call(self, run_id: str) -> HttpCall:
        return self._gql(STATUS, {"runId": run_id}, "status")

    def parse_status(self, reply: HttpReply) -> RunStatus:
        node = self._data(reply, "runOrError")
        if node.get("__typename") != "Run":
            return RunStatus(RunState.UNKNOWN, node.get("__typename"),
                             f"Dagster: {node.get('__typename')}: {node.get('message')}")
        return _status(node.get("status"))

    def batch_key(self) -> Any:
        return ("dagster", self._gql_url())

    def _gql_url(self) -> str:
        return self.spec.request.url if self.spec.request is not None else f"{self.base}/graphql"

    def batch_calls(self, run_ids: list[str]) -> list[HttpCall]:
        return [self._gql(BATCH, {"filter": {"runIds": run_ids[i:i + BATCH_SIZE]},
                                  "limit": len(run_ids[i:i + BATCH_SIZE])}, "status")
                for i in range(0, len(run_ids), BATCH_SIZE)]

    def parse_batch(self, reply: HttpReply, run_ids: list[str]) -> dict[str, RunStatus]:
        node = self._data(reply, "runsOrError")
        if node.get("__typename") != "Runs":
            raise PresetError(f"Dagster: {node.get('__typename')}: {node.get('message')}")
        results = node.get("results")
        if not isinstance(results, list):
            raise PresetError("the Dagster runsOrError reply has no results list")
        found: dict[str, RunStatus] = {}
        for run in results:
            if isinstance(run, dict) and run.get("runId") is not None:
                found[str(run["runId"])] = _status(run.get("status"))
        return found

    def cancel_call(self, run_id: str) -> HttpCall | None:
        return self._gql(TERMINATE, {"runId": run_id}, "cancel")

    def cancel_accepted(self, reply: HttpReply) -> bool:
        # terminateRun leaves an ended run as it is and says so with HTTP 200 and
        # TerminateRunFailure ("could not be terminated due to having status SUCCESS").
        try:
            node = self._data(reply, "terminateRun")
        except PresetError:
            return False
        return reply.ok and node.get("__typename") == "TerminateRunSuccess"

    def active_call(self) -> HttpCall | None:
        job = self.target.job_name or self._raw_job_name()
        return self._gql(RUNS, {"filter": {"pipelineName": job, "statuses": ACTIVE}}, "active")

    def parse_active(self, reply: HttpReply) -> list[RunRef]:
        node = self._data(reply, "runsOrError")
        return [RunRef(str(r["runId"]), self.run_url(str(r["runId"])), STATES.get(str(r.get("status"))))
                for r in node.get("results") or []]

    def _raw_job_name(self) -> str:
        body = self.spec.request.body if self.spec.request is not None else None
        name = dig(body, "variables.executionParams.selector.jobName") or \
            dig(body, "variables.executionParams.selector.pipelineName")
        if not name:
            raise PresetError("overlap needs the job name: use the short form with job_name")
        return str(name)

    def run_url(self, run_id: str) -> str | None:
        return f"{self.base}/runs/{run_id}"


_STATUSES: dict[Any, RunStatus] = {}


def _status(raw: Any) -> RunStatus:
    """The RunStatus of a Dagster run status, one shared object per value (a batch of a
    thousand runs holds a handful of states)."""
    hit = _STATUSES.get(raw) if isinstance(raw, str) else None
    if hit is not None:
        return hit
    state = STATES.get(str(raw))
    if state is None:
        return RunStatus(RunState.UNKNOWN, raw, f"unknown Dagster run status {raw!r}")
    status = RunStatus(state, raw, f"Dagster run status {raw}")
    _STATUSES[raw] = status
    return status


def _upstream_tags(upstream: Upstream | None) -> dict[str, str]:
    """The run tags that name the upstream (Dagster's UI lists them on the run's page)."""
    if upstream is None:
        return {}
    # `user` is the tag the Runs list's "Launched by" column shows (else "Manually launched").
    tags = {UPSTREAM_TAG: upstream.name, LAUNCHED_BY_TAG: upstream.name}
    if upstream.url:
        tags[UPSTREAM_URL_TAG] = upstream.url
    return tags


def _with_tags(body: dict[str, Any], new: dict[str, str], *, keep: bool = False) -> dict[str, Any]:
    """Add tags to a raw launchRun body's executionMetadata, when it has one. ``keep``: a
    tag the body already has stays as it is (else it is replaced)."""
    variables = body.get("variables")
    if not isinstance(variables, dict):
        return body
    params = variables.get("executionParams")
    if not isinstance(params, dict):
        return body
    meta = dict(params.get("executionMetadata") or {})
    old = [t for t in meta.get("tags") or [] if isinstance(t, dict)]
    have = {t.get("key") for t in old}
    if keep:
        tags = old + [{"key": k, "value": v} for k, v in new.items() if k not in have]
    else:
        tags = [t for t in old if t.get("key") not in new]
        tags += [{"key": k, "value": v} for k, v in new.items()]
    meta["tags"] = tags
    return {**body, "variables": {**variables, "executionParams": {**params, "executionMetadata": meta}}}
