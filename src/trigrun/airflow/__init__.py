"""trigrun for Apache Airflow 3: hook, operator, deferrable trigger, sensor, links, DAG factory,
job assets.

Everything here is imported lazily: Airflow imports this package while it discovers providers
(``trigrun.airflow._provider``), so importing ``trigrun.airflow`` itself must not import Airflow.
The names below load their module on first use::

    from trigrun.airflow import TrigRunOperator, dags_from_specs

Without Airflow installed, using them raises an ImportError that says to
``pip install 'trigrun[airflow]'``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assets import job_asset
    from .dag_factory import dags_from_specs, queue_pools
    from .hooks import TrigRunHook
    from .links import TrigRunLink
    from .operators import TrigRunOperator
    from .secrets import AirflowSecrets
    from .sensors import TrigRunSensor
    from .triggers import TrigRunTrigger

_EXPORTS = {
    "AirflowSecrets": "secrets",
    "TrigRunHook": "hooks",
    "TrigRunLink": "links",
    "TrigRunOperator": "operators",
    "TrigRunSensor": "sensors",
    "TrigRunTrigger": "triggers",
    "dags_from_specs": "dag_factory",
    "job_asset": "assets",
    "queue_pools": "dag_factory",
}

__all__ = [
    "AirflowSecrets",
    "TrigRunHook",
    "TrigRunLink",
    "TrigRunOperator",
    "TrigRunSensor",
    "TrigRunTrigger",
    "dags_from_specs",
    "job_asset",
    "queue_pools",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
