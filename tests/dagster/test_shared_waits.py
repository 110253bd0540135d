"""Concurrent in-op waits of one process share one poll group (issue 12): an op that fires
and waits on ten jobs of one Dagster-GraphQL target from ten threads is checked with batched
``runsOrError(filter: {runIds})`` requests, not ten per-run reads per interval, and each
wait's polls are still logged to the op's own event log."""

# No ``from __future__ import annotations``: Dagster reads the op's annotations at runtime.
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import pytest

from tests.helpers.fakes import FakeDagster
from tests.helpers.httpserver import LocalServer
from trigrun.dagster import TrigRunResource

pytestmark = pytest.mark.integration

N = 10
INTERVAL = 0.5
# Each read of a run (batched or not) moves it one step: four checks to the end.
STATUSES = ["QUEUED", "STARTED", "STARTED", "SUCCESS"]


@pytest.fixture
def fake() -> Iterator[FakeDagster]:
    with LocalServer() as server:
        yield FakeDagster(server, statuses=STATUSES)


def _spec(fake: FakeDagster, i: int) -> dict[str, Any]:
    return {"name": f"shared wait {i}",
            "target": {"type": "dagster", "base_url": fake.base_url, "job_name": f"etl_{i}",
                       "repository_location_name": "etl"},
            "wait": {"poll_interval_seconds": INTERVAL, "timeout_seconds": 60}}


def _status_reads(fake: FakeDagster) -> tuple[int, int]:
    """(batched reads, per-run reads) the target answered."""
    queries = [(r.json() or {}).get("query", "") for r in fake.server.requests_to("/graphql")]
    singles = sum(1 for q in queries if "runOrError" in q and "runsOrError" not in q)
    return fake.batch_reads, singles


def test_ten_threads_of_one_op_share_batched_status_reads(fake: FakeDagster) -> None:
    specs = [_spec(fake, i) for i in range(N)]

    @dg.op
    def fan_out(context: dg.OpExecutionContext, trigrun: TrigRunResource) -> list[str]:
        with ThreadPoolExecutor(N) as pool:
            done = list(pool.map(lambda s: trigrun.fire_and_wait(s, context=context), specs))
        return [run.state.value for _, run in done if run is not None]

    @dg.job
    def fan_out_job() -> None:
        fan_out()

    with dg.DagsterInstance.ephemeral() as instance:
        result = fan_out_job.execute_in_process(
            instance=instance, resources={"trigrun": TrigRunResource()})
        polls = [e for e in instance.all_logs(result.run_id)
                 if (e.user_message or "").startswith("trigrun poll:")]
    assert result.success
    assert result.output_for_node("fan_out") == ["success"] * N
    assert len(fake.runs) == N
    batched, singles = _status_reads(fake)
    # Per-run polling would read each run four times: 40 requests. In one group, a flush
    # reads every run it holds at once; threads that fired in different slots of the batch
    # window make a few flushes per interval at most (three phases here, under load).
    print(f"shared waits: {batched} batched and {singles} per-run reads for {N} runs")
    assert batched >= len(STATUSES) - 1, (batched, singles)
    assert batched + singles <= 3 * len(STATUSES), (batched, singles)
    # Each wait's polls reach the op's event log (from the op's thread, at INFO for each new
    # state): the first state of every run at least.
    names = {f"shared wait {i}" for i in range(N)}
    logged = {name for name in names for e in polls
              if e.level == logging.INFO and f"{name}:" in (e.user_message or "")}
    assert logged == names


def test_a_wait_given_its_own_engine_polls_alone(fake: FakeDagster) -> None:
    resource = TrigRunResource()
    with resource.engine() as engine:
        fired = resource.fire(_spec(fake, 0), engine=engine)
        run = resource.wait(fired, engine=engine)
    assert run.state.value == "success"
    assert _status_reads(fake) == (0, len(STATUSES))
