"""trigrun for Dagster: a resource, asset/job/schedule/sensor factories and a YAML component.

Names are imported lazily so that ``import trigrun.dagster`` stays cheap (the ``dg`` registry
imports it to list components), and a missing Dagster install gets one clear message.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if importlib.util.find_spec("dagster") is None:  # pragma: no cover - depends on the install
    raise ImportError(
        "trigrun.dagster needs Dagster, which is not installed; install it with "
        "pip install 'trigrun[dagster]'"
    )

if TYPE_CHECKING:
    from ._component import TrigRunComponent
    from ._factories import (
        TrigRunConfig,
        build_trigrun_asset,
        build_trigrun_asset_job,
        build_trigrun_definitions,
        build_trigrun_job,
        build_trigrun_schedule,
        op_name_for,
    )
    from ._metadata import asset_key_for, run_metadata, trigger_metadata
    from ._resource import RESOURCE_KEY, TrigRunResource
    from ._sensor import build_trigrun_sensor
    from ._upstream_link import build_upstream_link_sensor

_EXPORTS: dict[str, str] = {
    "RESOURCE_KEY": "._resource",
    "TrigRunResource": "._resource",
    "TrigRunConfig": "._factories",
    "build_trigrun_job": "._factories",
    "build_trigrun_asset": "._factories",
    "build_trigrun_asset_job": "._factories",
    "build_trigrun_schedule": "._factories",
    "build_trigrun_definitions": "._factories",
    "op_name_for": "._factories",
    "build_trigrun_sensor": "._sensor",
    "build_upstream_link_sensor": "._upstream_link",
    "TrigRunComponent": "._component",
    "asset_key_for": "._metadata",
    "trigger_metadata": "._metadata",
    "run_metadata": "._metadata",
}

__all__ = [
    "RESOURCE_KEY",
    "TrigRunComponent",
    "TrigRunConfig",
    "TrigRunResource",
    "asset_key_for",
    "build_trigrun_asset",
    "build_trigrun_asset_job",
    "build_trigrun_definitions",
    "build_trigrun_job",
    "build_trigrun_schedule",
    "build_trigrun_sensor",
    "build_upstream_link_sensor",
    "op_name_for",
    "run_metadata",
    "trigger_metadata",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    # The dg component registry lists a module's members through dir() + getattr().
    return sorted(set(globals()) | set(__all__))
