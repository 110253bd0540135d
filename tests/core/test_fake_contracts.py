"""The fakes cannot drift: each holds every request to its target's contract.

A request that breaks the contract is answered 400 and recorded, which fails the test that
sent it (the autouse fixture in tests/conftest.py); here each violation is sent on purpose
and the record taken, so this test checks the guard itself. A request within the contract
passes the same guard.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import contracts
from tests.helpers.fakes import DEP_1, FakeAirflow, FakeDagster, FakeDbtCloud, FakePrefect
from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun._targets.dagster import LAUNCH

pytestmark = pytest.mark.integration


def _send(server: LocalServer, method: str, path: str, **kw: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return client.request(method, path, **kw)


# (fake, a request within the contract, the same call broken)
CASES: dict[str, tuple[Callable[[LocalServer], Any], dict[str, Any], dict[str, Any], str]] = {
    "airflow-v2": (
        FakeAirflow,
        {"method": "POST", "path": "/api/v2/dags/etl/dagRuns",
         "json": {"dag_run_id": "r1", "logical_date": None, "conf": {}}},
        # Airflow 3's trigger body requires logical_date (nullable) and refuses other fields.
        {"method": "POST", "path": "/api/v2/dags/etl/dagRuns",
         "json": {"dag_run_id": "r1", "conf": {}, "execution_date": "2026-01-01T00:00:00Z"}},
        "logical_date"),
    "airflow-v1": (
        lambda s: FakeAirflow(s, api_version="v1"),
        {"method": "GET", "path": "/api/v1/dags/etl/dagRuns?state=queued&state=running"
                                  "&order_by=id&limit=100&offset=0"},
        {"method": "GET", "path": "/api/v1/dags/etl/dagRuns?limit=many"},
        "limit"),
    "dbt-cloud": (
        FakeDbtCloud,
        {"method": "GET", "path": '/api/v2/accounts/1/runs/?job_definition_id=42&order_by=-id'
                                  '&limit=20&include_related=["trigger"]'},
        # A list parameter dbt Cloud does not read that way (not one JSON array).
        {"method": "GET", "path": "/api/v2/accounts/1/runs/?include_related=trigger&limit=500"},
        "include_related"),
    "prefect": (
        FakePrefect,
        {"method": "POST", "path": "/api/flow_runs/filter",
         "json": {"flow_runs": {"id": {"any_": [DEP_1]}}, "limit": 1}},
        {"method": "POST", "path": "/api/flow_runs/filter",
         "json": {"flow_runs": {"id": {"any_": ["not-a-uuid"]}}, "limit": "ten"}},
        "uuid"),
    "dagster": (
        FakeDagster,
        {"method": "POST", "path": "/graphql", "json": {"query": LAUNCH, "variables": {
            "executionParams": {"selector": {"repositoryName": "r", "jobName": "j",
                                             "repositoryLocationName": "loc"},
                                "runConfigData": {}, "executionMetadata": {"tags": []}}}}},
        # The selector's repositoryLocationName is required (String!).
        {"method": "POST", "path": "/graphql", "json": {"query": LAUNCH, "variables": {
            "executionParams": {"selector": {"repositoryName": "r", "jobName": "j"},
                                "runConfigData": {}, "executionMetadata": {"tags": []}}}}},
        "repositoryLocationName"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_request_that_breaks_the_contract_is_refused_and_fails_the_test(
        server: LocalServer, name: str) -> None:
    make, good, bad, field = CASES[name]
    make(server)
    ok = _send(server, **good)
    assert ok.status_code < 300, ok.text
    assert contracts.drain() == []

    refused = _send(server, **bad)
    assert refused.status_code == 400
    found = contracts.drain()
    assert len(found) == 1, found
    assert field in found[0]
    assert "contract violation" in refused.json()["detail"]


def test_a_reply_of_the_fake_that_breaks_the_contract_is_recorded(server: LocalServer) -> None:
    # The fake itself drifting: a Prefect flow run without its required `created`.
    spec = contracts.contract("prefect.json", "/api")

    def drifted(req: Recorded) -> Reply:
        return Reply(200, json={"id": DEP_1, "flow_id": DEP_1, "updated": "2026-01-01T00:00:00Z"})

    server.on("GET", "/api/flow_runs/{run_id}",
              contracts.guard("drifted", spec, lambda: server.url, drifted))
    assert _send(server, "GET", f"/api/flow_runs/{DEP_1}").status_code == 200
    found = contracts.drain()
    assert len(found) == 1
    assert "created" in found[0]


def test_dagster_replies_are_executed_against_the_schema(server: LocalServer) -> None:
    spec = contracts.contract("dagster.graphql")
    query = {"query": "query Q($runId: ID!) { runOrError(runId: $runId) { __typename "
                      "... on Run { runId status } } }", "variables": {"runId": "r"}}

    def wrong_enum(req: Recorded) -> Reply:
        return Reply(200, json={"data": {"runOrError": {"__typename": "Run", "runId": "r",
                                                        "status": "DONE"}}})

    server.on("POST", "/graphql", contracts.guard("drifted", spec, lambda: server.url, wrong_enum))
    assert _send(server, "POST", "/graphql", content=json.dumps(query),
                 headers={"Content-Type": "application/json"}).status_code == 200
    found = contracts.drain()
    assert len(found) == 1
    assert "DONE" in found[0]
