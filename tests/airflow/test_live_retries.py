"""Exactly once across Airflow task retries, against a live Airflow 3 target."""

from __future__ import annotations

import pytest

from tests.airflow._live import Live, run_dag, task_instance, xcoms

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def test_retry_after_a_crash_right_after_the_trigger_adopts_the_run(live: Live) -> None:
    """Try 1 dies between the POST and recording anything; try 2 gets 409 and adopts."""
    dr = run_dag("trigrun_it_retry_gap")
    assert dr.state == "success"
    assert task_instance(dr).try_number == 2
    runs = live.target_runs(dr.run_id)
    assert len(runs) == 1, runs
    log = xcoms(dr)["return_value"]
    assert log["run_id"] == runs[0]["dag_run_id"]
    assert log["adopted"] is True
    assert log["status"] == 409
    assert log["reason"].startswith("idempotency")


def test_retry_after_the_wait_adopts_the_run_from_task_state_store(live: Live) -> None:
    """Try 1 fails after its run succeeded; try 2 sends nothing and adopts the stored run."""
    dr = run_dag("trigrun_it_retry_store")
    assert dr.state == "success"
    assert task_instance(dr).try_number == 2
    runs = live.target_runs(dr.run_id)
    assert len(runs) == 1, runs
    got = xcoms(dr)
    assert got["run_id"] == runs[0]["dag_run_id"]
    assert got["return_value"]["adopted"] is True
    assert got["return_value"]["reason"].startswith("task_state_store")
    assert got["return_value"]["attempts"] == []  # no request was sent by try 2
