"""The benchmark harness works: a tiny poll scenario end to end, and the report renders.

No timing assertions: the numbers live in benchmarks/README.md (``python -m benchmarks``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from benchmarks._common import StatusServer, run_child
from benchmarks._report import render
from benchmarks._suite import QUICK, poll_section

pytestmark = pytest.mark.integration

TINY = replace(QUICK, poll_sizes=(4,), poll_interval=0.2, poll_polls=3)


@pytest.mark.parametrize("contender", ["trigrun_wait", "dbt_loop"])
def test_poll_worker_drives_every_run_to_success(contender: str) -> None:
    with StatusServer() as server:
        server.reset(3)
        got = run_child("benchmarks._poll_worker", [
            contender, "--port", str(server.port), "--control", str(server.control_port),
            "--n", "4", "--interval", "0.2", "--polls", "3"], timeout=120)
        stats = server.stats()
    assert "error" not in got, got
    assert got["ok"] == 4
    assert stats["runs"] == 4
    assert stats["polls_per_run"] == [3, 3, 3, 3]  # queued, running, success: then it stopped
    assert len(stats["gaps"]) == 8
    if contender == "trigrun_wait":
        assert stats["connections"] <= 4  # kept alive and shared
    else:
        assert stats["connections"] == 12  # a new session, so a new connection, per poll


def test_report_renders_a_poll_section() -> None:
    # Two contenders prove the harness; the Airflow-importing ones take seconds to start each.
    section = poll_section(TINY, lambda msg: None, peers=("trigrun_wait", "dbt_loop"))
    assert {r["contender"] for r in section["rows"]} == {"trigrun_wait", "dbt_loop"}
    assert all("error" not in r for r in section["rows"]), section["rows"]
    results: dict[str, Any] = {
        "plan": "quick", "total_s": 1.0, "load_before": (0.0, 0.0, 0.0),
        "load_after": (0.0, 0.0, 0.0), "sections": {"poll": section},
        "machine": {"cpu": "test", "cores": 2, "memory": "1 GiB", "os": "test",
                    "python": "3", "versions": {}, "date": "today"}}
    text = render(results)
    assert "## Poll cost" in text
    assert "| trigrun `AsyncEngine.wait` |" in text
    assert "CPU per poll at N=4" in text  # the target rows are computed from the data


def test_quick_plan_is_small() -> None:
    # The smoke plan must stay a smoke run: a handful of seconds per contender.
    assert max(QUICK.poll_sizes) <= 500
    assert QUICK.poll_interval * QUICK.poll_polls <= 10
