"""Airflow internals the tests read, across the supported minors (3.0 to 3.3).

trigrun's own version differences live in ``trigrun/airflow/_compat.py``; these are the
test-only ones (the DAG bag, DAG serialization), plus a marker for what an older Airflow lacks.
Import this module only where Airflow is installed.
"""

from __future__ import annotations

from typing import Any

import pytest

from trigrun.airflow._versions import installed_airflow, parse

AIRFLOW = parse(installed_airflow() or "0")

# Airflow 3.2 moved DagBag to airflow.dag_processing.dagbag.
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag  # type: ignore[no-redef,attr-defined]

# Airflow 3.2 split DagSerialization (DAG -> dict) out of SerializedDAG.
try:
    from airflow.serialization.serialized_objects import DagSerialization
except ImportError:
    from airflow.serialization.serialized_objects import (  # type: ignore[no-redef,attr-defined]
        SerializedDAG as DagSerialization,
    )

# Airflow 3.1 exposed redact in airflow.sdk.log; 3.0 has it with the masker.
try:
    from airflow.sdk.log import redact
except ImportError:
    from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]


def runtime_hooks() -> Any:
    """The hooks a worker resolves connection types with."""
    try:  # Airflow 3.2 split the workers' provider registry out of ProvidersManager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
    except ImportError:
        from airflow.providers_manager import ProvidersManager

        return ProvidersManager().hooks
    return ProvidersManagerTaskRuntime().hooks


def needs_airflow(major: int, minor: int, why: str) -> pytest.MarkDecorator:
    """Skip on an older Airflow, saying which feature it lacks (docs/airflow.md lists them)."""
    return pytest.mark.skipif((major, minor) > AIRFLOW,
                              reason=f"needs Airflow {major}.{minor}+: {why}")


__all__ = ["AIRFLOW", "DagBag", "DagSerialization", "needs_airflow", "redact", "runtime_hooks"]
