"""A backfill of 30 daily partitions of a trigrun asset, launched through the live Dagster
webserver's GraphQL ``launchPartitionBackfill`` and run by ``dagster-daemon`` (the backfill
daemon submits one run per partition, the run queue starts them): 30 trigger requests, one per
date, never more than the ``warehouse`` pool's limit of 2 in flight, all 30 partitions
materialized."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.dagster import backfill_defs
from tests.fixtures.dagster_server import DagsterServer, free_port, start_dagster_server
from tests.helpers.httpserver import LocalServer, Recorded, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

N = 30
LIMIT = 2
HOLD = 6.0  # each trigger request is held this long: without the pool, runs would overlap here
KEY = ["trigrun", "nightly_load"]
DAGSTER_YAML = f"""\
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
run_launcher:
  module: dagster._core.launcher
  class: DefaultRunLauncher
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: {LIMIT}
telemetry:
  enabled: false
code_servers:
  local_startup_timeout: 180
"""
LAUNCH = """mutation Backfill($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on Error { message }
  }
}"""
STATUS = """query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename ... on PartitionBackfill { status } ... on Error { message }
  }
}"""
PARTITIONS = """query Stats($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename ... on AssetNode { partitionStats { numMaterialized numPartitions } }
  }
}"""


class InFlight:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.dates: list[str] = []

    def __call__(self, req: Recorded) -> Reply:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.dates.append(str((req.json() or {}).get("date")))
        time.sleep(HOLD)
        with self.lock:
            self.now -= 1
        return Reply(200, json={"ok": True})


@pytest.fixture
def target() -> Iterator[tuple[LocalServer, InFlight]]:
    counter = InFlight()
    with LocalServer() as server:
        server.on("POST", "/load", counter)
        yield server, counter


def test_backfill_of_30_partitions_fires_30_runs_within_the_pool_limit(
        tmp_path: Path, target: tuple[LocalServer, InFlight]) -> None:
    server, counter = target
    defs_file = Path(backfill_defs.__file__)
    with start_dagster_server(tmp_path / "home", defs_file, free_port(),
                              extra_env={backfill_defs.URL_ENV: server.url},
                              dagster_yaml=DAGSTER_YAML, daemon=True) as dagster:
        first = date.fromisoformat(backfill_defs.START)
        keys = [(first + timedelta(days=i)).isoformat() for i in range(N)]
        node = dagster.graphql(LAUNCH, {"p": {"assetSelection": [{"path": KEY}],
                                              "partitionNames": keys}})
        launched = node["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        status = wait_backfill(dagster, launched["backfillId"], timeout=900)
        assert status == "COMPLETED_SUCCESS", (status, _daemon_tail(dagster))
        stats = dagster.graphql(PARTITIONS, {"key": {"path": KEY}})["assetNodeOrError"]
        # Every partition since START exists; the 30 asked for are the ones materialized.
        assert stats["partitionStats"]["numMaterialized"] == N, stats
        runs = [r for r in dagster.runs()
                if r["tags"].get("dagster/backfill") == launched["backfillId"]]
        assert all(r["status"] == "SUCCESS" for r in runs), [r["status"] for r in runs]
        # A run of one partition names it as the partition or as a range [key, key].
        assert sorted(r["tags"].get("dagster/partition")
                      or r["tags"]["dagster/asset_partition_range_start"] for r in runs) == keys
    assert sorted(counter.dates) == keys  # one request per partition, each with its date
    assert 1 <= counter.peak <= LIMIT, counter.peak
    print(f"backfill: {N} partitions, peak {counter.peak} in flight (pool limit {LIMIT})")


def wait_backfill(dagster: DagsterServer, backfill_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    status = "?"
    while time.monotonic() < deadline:
        node = dagster.graphql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        status = str(node.get("status"))
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            return status
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} still {status} after {timeout:g}s\n"
                       f"{_daemon_tail(dagster)}")


def _daemon_tail(dagster: DagsterServer) -> str:
    log = dagster.home / "webserver.log"
    return json.dumps(log.read_text(errors="replace")[-3000:]) if log.exists() else "(no log)"
