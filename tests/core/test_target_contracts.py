"""What each preset sends and reads, against the validating fakes: Dagster's code location,
one meaning of "active" across presets, and Airflow's logical-date 409.

Real sockets; the fakes answer as the targets' contracts say (tests/helpers/fakes.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.fakes import DEP_1, FakeAirflow, FakeDagster, FakePrefect
from tests.helpers.httpserver import LocalServer
from trigrun._loader import validate_job
from trigrun._targets import preset_for

pytestmark = pytest.mark.integration

SCHEDULED = FakeClock().now()


def test_an_empty_dagster_code_location_is_refused_when_the_spec_is_loaded() -> None:
    with pytest.raises(trigrun.SpecValidationError) as err:
        validate_job({"name": "dag job", "target": {
            "type": "dagster", "base_url": "http://dagster.test", "job_name": "etl",
            "repository_location_name": ""}})
    assert "repository_location_name" in str(err.value)
    assert "dag job" in str(err.value)


def _job(target: dict[str, Any], **extra: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({"name": "overlap job", "overlap": "skip",
                                           "target": target, **extra})


@pytest.mark.parametrize("status", ["CANCELING", "MANAGED"])
def test_dagster_overlap_counts_a_canceling_or_managed_run_as_active(
        server: LocalServer, make_driver: Callable[..., Driver], status: str) -> None:
    # A run that has not ended is active, for every preset: Prefect's CANCELLING counts, and
    # so does Dagster's CANCELING (and MANAGED).
    fake = FakeDagster(server, statuses=[status])
    spec = _job({"type": "dagster", "base_url": fake.base_url, "job_name": "etl",
                 "repository_location_name": "loc"})
    driver = make_driver()
    first = driver.fire(spec, scheduled_time=SCHEDULED)
    assert first.ok
    again = driver.fire(spec, scheduled_time=SCHEDULED.replace(hour=SCHEDULED.hour + 1))
    assert again.ok
    assert again.skipped, again.reason
    assert len(fake.runs) == 1


def test_prefect_overlap_counts_a_cancelling_run_as_active(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    fake = FakePrefect(server)
    spec = _job({"type": "prefect", "base_url": fake.api_url, "deployment_id": DEP_1})
    driver = make_driver()
    first = driver.fire(spec, scheduled_time=SCHEDULED)
    assert first.run_id
    fake.set_run_state(first.run_id, "CANCELLING")
    again = driver.fire(spec, scheduled_time=SCHEDULED.replace(hour=SCHEDULED.hour + 1))
    assert again.skipped, again.reason
    assert len(fake.runs) == 1


def test_the_presets_agree_on_what_active_means() -> None:
    # Active = not ended: every state of the target but its terminal ones. Dagster's
    # SUSPENDED is the one left out of the filter (older servers reject the value).
    from trigrun._targets import dagster, dbt_cloud, prefect

    assert set(dagster.ACTIVE) == {s for s, st in dagster.STATES.items()
                                   if not st.terminal} - {"SUSPENDED"}
    assert set(prefect.ACTIVE) == {s for s, st in prefect.STATES.items() if not st.terminal}
    assert set(dbt_cloud.ACTIVE) == {s for s, st in dbt_cloud.STATUS.items() if not st.terminal}


def test_a_fixed_airflow_logical_date_409_is_explained(
        server: LocalServer, make_driver: Callable[..., Driver]) -> None:
    # Airflow answers 409 for a logical date another run has; a re-run's new key
    # (``...__rerun1``) then cannot start a run. The error says so and what to do.
    fake = FakeAirflow(server)
    base = {"type": "airflow", "base_url": fake.base_url, "dag_id": "etl", "api_version": "v2",
            "logical_date": "2026-03-16T01:00:00+00:00"}
    driver = make_driver()
    first = driver.fire(_job(base, overlap="allow"), scheduled_time=SCHEDULED)
    assert first.ok
    rerun = trigrun.JobSpec.model_validate({
        "name": "overlap job", "target": base,
        "idempotency": {"key": f"{first.idempotency_key}__rerun1"}})
    second = driver.fire(rerun, scheduled_time=SCHEDULED)
    assert not second.ok
    assert second.error is not None
    assert "logical_date" in second.error
    assert "target.logical_date" in second.error
    assert len(fake.runs) == 1


def test_airflow_v1_batches_like_v2() -> None:
    for version in ("v1", "v2"):
        preset = preset_for(trigrun.JobSpec.model_validate({"name": "j", "target": {
            "type": "airflow", "base_url": "http://af.test", "dag_id": "etl",
            "api_version": version}}))
        assert preset.batch_key() == ("airflow", f"http://af.test/api/{version}/dags/etl/dagRuns")
        assert "state=queued&state=running&order_by=id" in preset.batch_page(0).url
