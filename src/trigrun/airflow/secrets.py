"""``secret://`` references resolved from Airflow connections and variables.

So every Airflow secrets backend (Vault, AWS Secrets Manager, environment variables, the
metadata database...) works for trigrun with nothing more to configure. The grammar:

``secret://conn/<conn_id>/<field>``
    A field of an Airflow connection: ``password``, ``login``, ``host``, ``schema``, ``port``,
    or ``extra/<key>[/<key>...]`` for a value inside the connection's extra JSON
    (``secret://conn/prod/extra/headers/X-Api-Key``). The ``trigrun`` connection type writes
    these references itself (see ``hooks``), so specs never carry the values.
``secret://var/<key>``
    An Airflow variable.
``secret://<name>``
    The password of connection ``<name>`` when that connection exists and has one, else the
    variable ``<name>``. When neither exists the next resolver of the chain is asked: trigrun's
    ``EnvSecrets`` (``TRIGRUN_SECRET_<NAME>``).

Where the lookups run:

- In a worker (operator, sensor in poke mode) the synchronous Task SDK calls are used
  (``Connection.get``, ``Variable.get``): they go through the task supervisor.
- In the triggerer the lookups are awaited, never blocking the shared event loop:
  ``Connection.async_get`` for connections, and for variables each configured secrets backend's
  ``aget_variable`` (the execution-API backend has one) or its sync getter in a thread, which
  is what Airflow's own ``Connection.async_get`` does for connections.

Every resolved value is registered with Airflow's secrets masker (``mask_secret`` in a worker,
``amask_secret`` in the triggerer), so it is redacted from task and trigger logs too, not only
from trigrun's own messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from ._compat import (
    AirflowSecretsBackendAccessDenied,
    aextra_dejson,
    aget_connection,
    amask_secret,
    is_not_found,
    mask_secret,
    secrets_backends,
)

log = logging.getLogger(__name__)

CONN_FIELDS = ("password", "login", "host", "schema", "port", "extra")


def parse_reference(name: str) -> tuple[str, str, list[str]]:
    """``("conn", conn_id, path)``, ``("var", key, [])`` or ``("any", name, [])``."""
    head, _, rest = name.partition("/")
    if head == "conn" and rest:
        conn_id, _, path = rest.partition("/")
        fields = [p for p in path.split("/") if p] if path else ["password"]
        if fields[0] not in CONN_FIELDS:
            raise ValueError(f"secret://{name}: {fields[0]!r} is not a connection field; use one "
                             f"of {', '.join(CONN_FIELDS)} (extra/<key> for extra JSON)")
        return "conn", conn_id, fields
    if head == "var" and rest:
        return "var", rest, []
    return "any", name, []


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _field(conn: Any, fields: list[str], extra: dict[str, Any] | None) -> str | None:
    first = fields[0]
    if first != "extra":
        return _as_text(getattr(conn, first, None))
    value: Any = extra or {}
    for key in fields[1:]:
        if not isinstance(value, dict):
            return None
        # Values set through the connection form are stored with a prefix.
        value = value.get(key, value.get(f"extra__trigrun__{key}"))
    return _as_text(value)


class AirflowSecrets:
    """A trigrun secrets resolver: call it in a worker, await ``aresolve`` in the triggerer."""

    def __repr__(self) -> str:
        return "AirflowSecrets()"

    # -- sync (worker) ---------------------------------------------------------------------
    def __call__(self, name: str) -> str | None:
        from airflow.sdk import Connection, Variable

        kind, key, fields = parse_reference(name)
        value: str | None = None
        if kind in ("conn", "any"):
            try:
                conn = Connection.get(key)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                conn = None
            if conn is not None:
                extra = conn.extra_dejson if fields and fields[0] == "extra" else None
                value = _field(conn, fields or ["password"], extra)
        if value is None and kind in ("var", "any"):
            try:
                value = _as_text(Variable.get(key, default=None))
            except Exception as exc:
                if not is_not_found(exc):
                    raise
        if value is not None:
            mask_secret(value)
        return value

    # -- async (triggerer) -----------------------------------------------------------------
    async def aresolve(self, name: str) -> str | None:
        kind, key, fields = parse_reference(name)
        value: str | None = None
        if kind in ("conn", "any"):
            try:
                conn = await aget_connection(key)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                conn = None
            if conn is not None:
                extra = await aextra_dejson(conn) if fields and fields[0] == "extra" else None
                value = _field(conn, fields or ["password"], extra)
        if value is None and kind in ("var", "any"):
            value = _as_text(await aget_variable(key))
        if value is not None:
            await amask_secret(value)
        return value


async def aget_variable(key: str) -> str | None:
    """An Airflow variable's raw value, or None, without blocking the event loop."""
    backends = secrets_backends()
    if backends is None:  # pragma: no cover - a Task SDK that moved it: fall back to a thread
        return await asyncio.to_thread(_sync_variable, key)
    for backend in backends:
        try:
            getter = getattr(backend, "aget_variable", None)
            if getter is not None:
                value = await getter(key)
            else:
                value = await asyncio.to_thread(backend.get_variable, key)
        except AirflowSecretsBackendAccessDenied:
            raise  # an explicit deny must not fall through to a laxer backend
        except Exception:
            log.debug("variable lookup in %s failed", type(backend).__name__, exc_info=True)
            continue
        if value is not None:
            return str(value)
    return None


def _sync_variable(key: str) -> str | None:  # pragma: no cover - see aget_variable
    from airflow.sdk import Variable

    value = Variable.get(key, default=None)
    return None if value is None else str(value)


def airflow_hint(reference: str) -> str:
    """What to create in Airflow so that ``secret://...`` resolves (names only, no values)."""
    name = reference.removeprefix("secret://")
    try:
        kind, key, fields = parse_reference(name)
    except ValueError as exc:
        return str(exc)
    env = "".join(c if c.isalnum() else "_" for c in key).upper()
    if kind == "conn":
        field = "/".join(fields)
        what = (f"with {fields[-1]!r} in its Extra JSON" if fields[0] == "extra" and len(fields) > 1
                else f"with its {field} set")
        return (f"Create the Airflow connection {key!r} {what} (Admin > Connections, "
                f"`airflow connections add {key}`, the AIRFLOW_CONN_{env} environment variable "
                "or your secrets backend).")
    if kind == "var":
        return (f"Create the Airflow variable {key!r} (Admin > Variables, "
                f"`airflow variables set {key} ...`, the AIRFLOW_VAR_{env} environment variable "
                "or your secrets backend).")
    return (f"Create the Airflow connection {key!r} with a password, or the Airflow variable "
            f"{key!r} (or, outside Airflow's secrets, the environment variable "
            f"TRIGRUN_SECRET_{env} in the worker and the triggerer). Write "
            f"secret://conn/{key}/password or secret://var/{key} to say which.")


def explain_missing(exc: Any, where: str | None = None) -> Any:
    """The ``SecretNotFound`` again, with the Airflow connection or variable to create."""
    from .. import SecretNotFound

    return SecretNotFound(exc.reference, job=exc.job, where=where, hint=airflow_hint(exc.reference))
