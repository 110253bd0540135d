"""The completion sensor checks all its pending runs per tick in batched requests: 30
pending runs on one Dagster-GraphQL-shaped target are one status request, not 30."""

from __future__ import annotations

import dagster as dg

from tests.dagster.helpers import values
from tests.helpers.fakes import FakeDagster
from tests.helpers.httpserver import LocalServer
from trigrun.dagster import TrigRunResource, build_trigrun_asset, build_trigrun_sensor

N = 30


def test_one_tick_checks_30_pending_runs_in_one_batched_request() -> None:
    with LocalServer() as server, dg.instance_for_test() as instance:
        fake = FakeDagster(server, statuses=["SUCCESS"])
        spec = {"name": "Load", "target": {"type": "dagster", "base_url": fake.base_url,
                                           "job_name": "warehouse",
                                           "repository_location_name": "etl"},
                "wait": {"poll_interval_seconds": 5}}
        resources = {"trigrun": TrigRunResource(max_requests_per_second=50)}
        fired = dg.materialize([build_trigrun_asset(spec, wait_in="sensor")],
                               instance=instance, resources=resources)
        assert fired.success
        # The other 29 fires, recorded as the first one was (its own metadata, other runs).
        (record,) = instance.fetch_observations(
            dg.AssetKey(["trigrun", "load"]), limit=5).records
        assert record.asset_observation is not None
        first = record.asset_observation.metadata
        for i in range(2, N + 1):
            fake.runs.append({"runId": f"run-{i}", "status": "STARTED", "jobName": "warehouse",
                              "tags": {}, "script": ["SUCCESS"]})
            instance.report_runless_asset_event(dg.AssetObservation(
                asset_key=record.asset_observation.asset_key,
                metadata={**first, "run_id": dg.MetadataValue.text(f"run-{i}"),
                          "run_url": dg.MetadataValue.url(f"{fake.base_url}/runs/run-{i}")}))
        before = len(server.requests_to("/graphql"))

        sensor = build_trigrun_sensor([spec])
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(result, dg.SensorResult)

        sent = [r.json() or {} for r in server.requests_to("/graphql")[before:]]
        assert fake.batch_reads == 1
        assert len(sent) == 1, [s.get("query", "")[:40] for s in sent]
        assert sorted(sent[0]["variables"]["filter"]["runIds"]) == sorted(
            f"run-{i}" for i in range(1, N + 1))
        events = list(result.asset_events)
        assert len(events) == N
        assert all(isinstance(e, dg.AssetMaterialization) for e in events)
        assert {values(e.metadata)["run_id"] for e in events} == {
            f"run-{i}" for i in range(1, N + 1)}
        assert all(values(e.metadata)["state"] == "success" for e in events)
