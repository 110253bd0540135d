"""Every difference between the Airflow minors trigrun supports (3.0 to 3.3), in one place.

The other modules of ``trigrun.airflow`` import version-dependent Airflow names from here only,
and import this module first: without a supported Airflow it raises one ImportError that says
what to install. Each difference carries a comment naming the version that changed it. Private
Airflow modules are imported only here, each with a public fallback, so a minor release that
moves one degrades a detail (documented in docs/airflow.md, "Airflow versions") and never
breaks an import.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

from ._versions import installed_airflow, parse, unsupported

_problem = unsupported(installed_airflow())
if _problem is not None:
    raise ImportError(_problem)

try:  # the same in every 3.x
    from airflow.sdk.exceptions import AirflowRuntimeError
    from airflow.sdk.log import mask_secret
except ModuleNotFoundError as exc:  # a broken install: the distribution without its code
    raise ImportError(unsupported(None)) from exc

AIRFLOW_VERSION = parse(installed_airflow() or "0")

# -- Task SDK names that arrived after 3.0 --------------------------------------------------

# Airflow 3.1 added BaseHook to airflow.sdk; 3.0 has it in airflow.hooks.base only.
try:
    from airflow.sdk import BaseHook
except ImportError:
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef]

# Airflow 3.2 added conf to airflow.sdk (airflow.sdk.configuration); 3.0 and 3.1 read it from
# airflow.configuration (the same [section] option values).
try:
    from airflow.sdk import conf
except ImportError:
    from airflow.configuration import conf  # type: ignore[no-redef]

# Airflow 3.2 re-exported CronTriggerTimetable from airflow.sdk.
try:
    from airflow.sdk import CronTriggerTimetable
except ImportError:
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[no-redef]

# Airflow 3.2 moved the task exceptions to airflow.sdk.exceptions (airflow.exceptions
# re-exports them there, so an `except` catches both).
try:
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
    )
except ImportError:
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
    )

# Airflow 3.2 added AirflowSecretsBackendAccessDenied (a backend's explicit deny). Before it no
# backend raises one, so a class nothing raises keeps `except` clauses meaning the same.
try:
    from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied
except ImportError:
    class AirflowSecretsBackendAccessDenied(Exception):  # type: ignore[no-redef]
        """Never raised before Airflow 3.2."""


# -- secret masking -------------------------------------------------------------------------


async def amask_secret(value: str) -> None:
    """Mask ``value`` in this process's logs and tell the supervisor, without blocking."""
    try:
        # Airflow 3.3 added amask_secret: the triggerer's async path to the supervisor.
        from airflow.sdk.log import amask_secret as _amask
    except ImportError:
        # 3.0-3.2: the sync call masks locally; it tells the supervisor where it can from an
        # event loop (3.2, through its greenback portal) and is a local mask on 3.0/3.1.
        mask_secret(value)
        return
    await _amask(value)


def add_local_mask(value: str) -> None:
    """Mask ``value`` in this process's logs only (the triggerer's loop must not block)."""
    masker = _secrets_masker()
    if masker is not None:
        masker().add_mask(value)
        return
    with contextlib.suppress(Exception):  # public fallback: masks, may also tell the supervisor
        mask_secret(value)


def _secrets_masker() -> Callable[[], Any] | None:
    # Private: Airflow 3.1 moved the masker to airflow.sdk._shared.secrets_masker; 3.0 has it
    # in airflow.sdk.execution_time.secrets_masker. None: use the public mask_secret.
    for module in ("airflow.sdk._shared.secrets_masker",
                   "airflow.sdk.execution_time.secrets_masker"):
        with contextlib.suppress(ImportError, AttributeError):
            masker: Callable[[], Any] = import_module(module)._secrets_masker
            return masker
    return None


def is_not_found(exc: BaseException) -> bool:
    """Whether a Connection/Variable lookup failed because the key does not exist."""
    if isinstance(exc, (AirflowNotFoundException, AirflowRuntimeError)):
        return True
    # Airflow 3.0 (changed in 3.1): outside a task process a lookup that missed every secrets
    # backend fails importing the absent supervisor channel instead of raising "not found".
    return isinstance(exc, ImportError) and "SUPERVISOR_COMMS" in str(exc)


# -- connections in the triggerer ----------------------------------------------------------


async def aget_connection(conn_id: str) -> Any:
    """``Connection.get`` for an event loop (raises AirflowNotFoundException if missing)."""
    from airflow.sdk import Connection

    getter = getattr(Connection, "async_get", None)
    if getter is not None:
        return await getter(conn_id)
    # Airflow 3.1 added Connection.async_get. On 3.0 the sync call must run in asgiref's
    # thread (what 3.0's own async hooks do): its supervisor channel calls back into this loop.
    from asgiref.sync import sync_to_async

    return await sync_to_async(Connection.get)(conn_id)


async def aextra_dejson(conn: Any) -> dict[str, Any]:
    """A connection's extra JSON as a dict, without blocking the event loop."""
    getter = getattr(conn, "aextra_dejson", None)
    if getter is not None:
        return dict(await getter())
    # Airflow 3.3 added aextra_dejson; before it extra_dejson masks with a sync call that
    # must not run on the loop, so parse the public `extra` text here (the caller masks the
    # one value it takes out).
    try:
        extra = json.loads(conn.extra or "{}")
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


# -- task instances -------------------------------------------------------------------------


def task_log_url(ti: Any) -> str | None:
    """Airflow's URL of a task instance's page, or None (the caller builds it)."""
    try:
        url = ti.log_url
    except Exception:
        return None
    # Airflow 3.1 made RuntimeTaskInstance.log_url a property; on 3.0 it is a field filled
    # only by the task runner's start-up (None under dag.test()).
    return str(url) if url else None


# -- secrets backends -----------------------------------------------------------------------


def secrets_backends() -> list[Any] | None:
    """The worker's/triggerer's secrets backends, in lookup order; None if not reachable."""
    try:
        # Private (all 3.x so far): the Task SDK's backend chain, to look a variable up with
        # each backend's async getter. None: the caller uses the public Variable.get.
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded
    except ImportError:
        return None
    return list(ensure_secrets_backend_loaded())


# -- DAG-file context -----------------------------------------------------------------------


def current_dag_and_group(dag: Any = None) -> tuple[Any, Any]:
    """The DAG (``dag``, else the one of ``with DAG(...)``) and the task group a DAG file is
    declaring tasks in; ``(dag, None)`` when Airflow's context is not reachable."""
    try:
        # Private (all 3.x so far): `with DAG()` / `with TaskGroup()` context stacks. Without
        # them the caller asks for an explicit job name.
        from airflow.sdk.definitions._internal.contextmanager import DagContext, TaskGroupContext
    except ImportError:
        return dag, None
    dag = dag or DagContext.get_current()
    return dag, (TaskGroupContext.get_current(dag) if dag is not None else None)


# -- mapped tasks and XCom -------------------------------------------------------------------

# Public in airflow.sdk since 3.0; the definitions module is the fallback for a build that
# does not re-export it.
try:
    from airflow.sdk import XComArg
except ImportError:  # pragma: no cover - every supported minor has the public name
    from airflow.sdk.definitions.xcom_arg import XComArg  # type: ignore[no-redef]


def expand_mapped_kwargs(mapped: Any, context: Any) -> Mapping[str, Any] | None:
    """A mapped task's arguments for this instance, as expanded from XCom; None when this
    Airflow cannot tell (the caller then reads them off the operator it was built into)."""
    # Private on MappedOperator (3.0-3.3): the only call that returns the expanded values
    # apart from the operator built from them.
    expand = getattr(mapped, "_expand_mapped_kwargs", None)
    if expand is None:
        return None
    try:
        values, _ = expand(context)
    except TypeError:  # a changed signature: degrade, do not crash the task
        return None
    return values if isinstance(values, Mapping) else None


def mapped_expand_input(mapped: Any) -> Any:
    """What a mapped task expands over (its ``expand`` / ``expand_kwargs`` input); None when
    this Airflow does not tell."""
    # Private on MappedOperator (3.0-3.3); `expand_input` is the attribute it reads for
    # expand(), the fallback where the method is gone.
    getter = getattr(mapped, "_get_specified_expand_input", None)
    return getter() if getter is not None else getattr(mapped, "expand_input", None)


def get_xcom_value(ti_key: Any, key: str) -> Any:
    """The XCom ``key`` of a task instance, for an operator link (API server side)."""
    # The Task SDK's XCom class has no public import path in 3.0-3.3 (airflow.sdk exports
    # none); a missing one shows no link rather than failing the page.
    try:
        from airflow.sdk.execution_time.xcom import XCom
    except ImportError:
        return None
    return XCom.get_value(ti_key=ti_key, key=key)


__all__ = [
    "AIRFLOW_VERSION",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRuntimeError",
    "AirflowSecretsBackendAccessDenied",
    "AirflowSensorTimeout",
    "BaseHook",
    "CronTriggerTimetable",
    "XComArg",
    "add_local_mask",
    "aextra_dejson",
    "aget_connection",
    "amask_secret",
    "conf",
    "current_dag_and_group",
    "expand_mapped_kwargs",
    "get_xcom_value",
    "is_not_found",
    "mapped_expand_input",
    "mask_secret",
    "secrets_backends",
    "task_log_url",
]
