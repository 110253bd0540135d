"""Reading what Dagster recorded: metadata of outputs and failures, a run's event log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg


def values(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values of a metadata mapping."""
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The metadata of the (only) op output of a run."""
    events = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert len(events) == 1, [e.event_type_value for e in result.all_events]
    return dict(events[0].step_output_data.metadata)


def failure_metadata(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    """The description and metadata of the ``dagster.Failure`` the op raised."""
    failures = result.get_step_failure_events()
    assert len(failures) == 1
    data = failures[0].step_failure_data.user_failure_data
    assert data is not None, failures[0].step_failure_data.error
    return str(data.description), dict(data.metadata)


def run_logs(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every event of a run, serialized as Dagster stores it."""
    return "\n".join(dg.serialize_value(e) for e in instance.all_logs(run_id))
