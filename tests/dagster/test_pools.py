"""A job's queue is a Dagster pool: five jobs of one queue, a pool limit of 2, one run of all
five on the multiprocess executor (a real, temporary instance): never more than two trigger
requests in flight at the target."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest

from tests.dagster import pool_defs
from tests.helpers.httpserver import LocalServer, Recorded, Reply

HOLD = 2.0
# The longest a request waits for a second one (the jobs' requests time out after 30 s).
MEET_CAP = 20.0


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.peak = self.total = 0
        self.two = threading.Event()  # two requests were in flight at once

    def __call__(self, req: Recorded) -> Reply:
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
            if self.now >= 2:
                self.two.set()
        # Held until a second request has arrived, however long the second step's process
        # takes to start, then HOLD more: a third one the pool let through would arrive
        # meanwhile (all five step processes start at once).
        if not self.two.wait(MEET_CAP):
            self.two.set()  # never two at once: the check below fails, without more waiting
        time.sleep(HOLD)
        with self.lock:
            self.now -= 1
        return Reply(200, json={"ok": True})


def test_ops_and_assets_of_one_queue_run_in_its_pool() -> None:
    spec = pool_defs.SPECS[0]
    from trigrun.dagster import build_trigrun_job

    job = build_trigrun_job(spec)
    (node,) = job.nodes
    assert node.definition.pool == "warehouse"  # type: ignore[attr-defined]
    assert pool_defs.ASSETS[0].op.pool == "warehouse"


@pytest.mark.integration
def test_five_jobs_of_one_queue_never_exceed_the_pool_limit_of_two(
        monkeypatch: pytest.MonkeyPatch) -> None:
    counter = Counter()
    with LocalServer() as server:
        for i in range(5):
            server.on("POST", f"/load/{i}", counter)
        monkeypatch.setenv(pool_defs.URL_ENV, server.url)
        with dg.instance_for_test(overrides={
                "concurrency": {"pools": {"granularity": "op"}}}) as instance:
            # What `dagster instance concurrency set warehouse 2` does.
            instance.event_log_storage.set_concurrency_slots(pool_defs.POOL, 2)
            started = time.monotonic()
            result = dg.execute_job(
                dg.reconstructable(pool_defs.all_loads_job), instance=instance)
            took = time.monotonic() - started
            assert result.success
    assert counter.total == 5
    assert counter.peak == 2, (counter.peak, took)
