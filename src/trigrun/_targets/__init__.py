"""Target presets: one module per target, each pure (build requests, read replies)."""

from __future__ import annotations

from .._models import JobSpec
from ._base import HttpCall, HttpReply, Preset, PresetError, RunRef, RunStatus, dig

__all__ = ["HttpCall", "HttpReply", "Preset", "PresetError", "RunRef", "RunStatus", "dig",
           "preset_for"]


_PRESETS: dict[str, type[Preset]] = {}


def _registry() -> dict[str, type[Preset]]:
    if _PRESETS:
        return _PRESETS
    from .airflow import AirflowPreset
    from .dagster import DagsterPreset
    from .dbt_cloud import DbtCloudPreset
    from .prefect import PrefectPreset
    from .webhook import WebhookPreset

    _PRESETS.update({p.name: p for p in (AirflowPreset, DbtCloudPreset, PrefectPreset,
                                         DagsterPreset, WebhookPreset)})
    return _PRESETS


def preset_for(spec: JobSpec) -> Preset:
    return _registry()[spec.target_name](spec)
