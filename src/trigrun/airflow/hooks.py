"""``TrigRunHook`` and the ``trigrun`` connection type.

A ``trigrun`` connection holds what several jobs against one service share:

- **Base URL** (``host``): ``https://airflow.example.com``. Short-form targets without a
  ``base_url`` get it, and a raw ``request.url`` that starts with ``/`` is joined to it.
- **Username / Password**: with a username, the password is used for Airflow's ``/auth/token``
  (Airflow targets) or basic auth (others); without one, the password is a bearer token. The
  ``auth_type`` field (``bearer``, ``basic``, ``airflow_password``, ``header`` with
  ``auth_header``, ``none``) overrides that guess.
- **Extra** ``{"headers": {"X-Api-Key": "..."}}``: headers added to raw requests.
- **Max requests per second** (extra ``max_requests_per_second``): a ceiling on the rate of
  requests to the base URL's origin, for the engines of the hook, the operator's worker and
  the triggerer (shared there by every deferred task on the origin).
- **Proxy**, **TLS verify**, **Client certificate** (extra ``proxy``, ``verify``, ``cert``): how
  the connection's jobs connect; the proxy URL (it may hold credentials) goes into the spec as
  a ``secret://conn/<conn_id>/extra/proxy`` reference. Empty: the environment's proxies.

A job's own ``auth`` and headers win over the connection's. The connection is applied as
``secret://conn/<conn_id>/...`` references (``ConnectionInfo``/``apply_connection`` in
``_spec``), never as values: the spec that Airflow renders, serializes and hands to the
triggerer holds references only, which are resolved at send time by ``AirflowSecrets``.

Connections are looked up at execute time only, never while a DAG file is parsed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ._compat import BaseHook, mask_secret  # first: a clear ImportError without Airflow

# isort: split
from .. import AsyncEngine, Engine, EnvSecrets, Event, JobSpec, TriggerResult
from .._exceptions import SpecError
from .._origins import origin
from ._render import refuse_foreign_origins
from ._spec import ConnectionInfo, _auth, apply_connection, build_spec_dict, validate
from .secrets import AirflowSecrets


def sync_engine(on_event: Callable[[Event], None] | None = None, **kwargs: Any) -> Engine:
    """An Engine for a worker: Airflow connections/variables, then ``TRIGRUN_SECRET_*``."""
    return Engine(secrets=[AirflowSecrets(), EnvSecrets()], on_secret=mask_secret,
                  on_event=on_event, **kwargs)


class TrigRunHook(BaseHook):
    """Talks to a job's target with the credentials of a ``trigrun`` connection.

    :param trigrun_conn_id: the connection; ``None`` uses the spec as it is (its ``secret://``
        references are still resolved from Airflow connections, variables and the environment).
    """

    conn_name_attr = "trigrun_conn_id"
    default_conn_name = "trigrun_default"
    conn_type = "trigrun"
    hook_name = "TrigRun"

    def __init__(self, trigrun_conn_id: str | None = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trigrun_conn_id = trigrun_conn_id

    # -- the connection --------------------------------------------------------------------
    def connection_info(self) -> ConnectionInfo | None:
        if not self.trigrun_conn_id:
            return None
        conn = self.get_connection(self.trigrun_conn_id)
        return ConnectionInfo.from_connection(conn, conn.extra_dejson)

    async def aconnection_info(self) -> ConnectionInfo | None:
        if not self.trigrun_conn_id:
            return None
        conn = await self.aget_connection(self.trigrun_conn_id)
        return ConnectionInfo.from_connection(conn, await conn.aextra_dejson())

    def get_conn(self) -> ConnectionInfo | None:
        return self.connection_info()

    def apply(self, spec: JobSpec | Mapping[str, Any], where: str | None = None) -> JobSpec:
        """The spec completed from the connection (base URL, auth, headers), validated."""
        data = build_spec_dict(spec, {}, where or f"connection {self.trigrun_conn_id!r}")
        info = self.connection_info()
        if info is not None:
            data = apply_connection(data, info)
        return validate(data, where or f"connection {self.trigrun_conn_id!r}")

    # -- doing things ----------------------------------------------------------------------
    def engine(self, on_event: Callable[[Event], None] | None = None, **kwargs: Any) -> Engine:
        """An Engine with the connection's ``max_requests_per_second`` on its base URL."""
        info = self.connection_info()
        if info is not None and info.rates() and "max_requests_per_second" not in kwargs:
            kwargs["max_requests_per_second"] = info.rates()
        if info is not None and "allowed_origins" not in kwargs:
            # A spec the engine renders may send the connection's credentials to its own
            # origin and to those its extra lists (docs/security.md).
            home = [origin(info.base_url)] if info.base_url and origin(info.base_url) else []
            kwargs["allowed_origins"] = [*home, *info.allowed_origins]
        return sync_engine(on_event, **kwargs)

    def fire(self, spec: JobSpec | Mapping[str, Any], *, scheduled_time: datetime | None = None,
             context: Mapping[str, Any] | None = None, render: bool = True) -> TriggerResult:
        """Send one trigger (with the job's retries); the result records failures."""
        applied = self.apply(spec)
        if not render:  # the caller rendered: what it hands over is as its author wrote it
            refuse_foreign_origins(self.trigrun_conn_id or "hook", applied, None,
                                   self.connection_info())
        with self.engine() as engine:
            return engine.fire(applied, context, scheduled_time=scheduled_time,
                               render=render)

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: refuses what ``apply()`` would refuse (an unknown auth type,
        basic auth without a username), checks the base URL is reachable through the same
        engine, proxy and TLS settings as a real fire, and says whether the credentials
        themselves were checked. They are, with a cheap authenticated read, where the target
        offers one: Airflow's ``/auth/token`` (username and password), Airflow's
        ``GET /api/v2/dags?limit=1`` or dbt Cloud's ``GET /api/v2/accounts/`` (a token).
        Credentials go only to the connection's own origin (docs/airflow.md)."""
        info = self.connection_info()
        if info is None or not info.base_url:
            return False, "the connection has no Base URL (host)"
        try:  # what every task using the connection would meet
            for target in (None, "airflow"):
                _auth(info, target)
        except SpecError as exc:
            return False, f"the connection cannot be used: {exc}"
        probe = dataclasses.replace(info, has_password=False, header_names=())
        with self.engine() as engine:
            result = self._probe(engine, probe, info.base_url, "GET")
            if result.status_code is None:
                return False, f"{info.base_url} is not reachable: {result.attempts[-1].error}"
            reached = f"{info.base_url} answered HTTP {result.status_code}"
            if result.status_code >= 500:
                return False, reached
            ok, checked = self._check_credentials(engine, info)
        return ok, f"{reached}; {checked}"

    def _probe(self, engine: Engine, info: ConnectionInfo, url: str, method: str,
               body: Any = None, in_body: bool = False) -> TriggerResult:
        """One request to the connection's own origin; ``in_body``: the credentials are in
        ``body`` (as references), not in an auth header."""
        request: dict[str, Any] = {"url": url, "method": method, "timeout_seconds": 10}
        if body is not None:
            request["body"] = body
        if in_body:
            info = dataclasses.replace(info, has_password=False)
        data = apply_connection({
            "name": f"connection test {info.conn_id}", "target": "webhook", "request": request,
            "retry_policy": {"max_attempts": 1}, "idempotency": {"enabled": False},
            "wait": {"enabled": False}}, info)
        return engine.fire(validate(data, f"connection {info.conn_id!r}"), render=False)

    def _check_credentials(self, engine: Engine, info: ConnectionInfo) -> tuple[bool, str]:
        """(usable, what was found) from a cheap authenticated read at the base URL."""
        if not info.has_password or (info.auth_type or "auto").lower() == "none":
            return True, "the connection holds no credentials to check"
        base = info.base_url or ""
        kind = (info.auth_type or "auto").lower()
        reads: list[tuple[str, str, str, Any, Any]] = []
        if info.login and kind in ("auto", "airflow_password"):
            reads.append(("Airflow's /auth/token", f"{base}/auth/token", "POST",
                          {"username": info.ref("login"), "password": info.ref("password")},
                          True))
        if kind in ("auto", "bearer", "basic", "header") and not (
                kind == "auto" and info.login):
            reads += [("Airflow's GET /api/v2/dags", f"{base}/api/v2/dags?limit=1", "GET",
                       None, False),
                      ("dbt Cloud's GET /api/v2/accounts/", f"{base}/api/v2/accounts/", "GET",
                       None, False)]
        for name, url, method, body, in_body in reads:
            result = self._probe(engine, info, url, method, body, in_body)
            code = result.status_code
            if code in (401, 403):
                return False, f"the credentials were checked and refused: {name} answered " \
                              f"HTTP {code}"
            if code is not None and 200 <= code < 300:
                return True, f"the credentials were checked: {name} accepted them"
        return True, ("the credentials were NOT checked: the base URL offers none of the "
                      "authenticated reads trigrun knows (Airflow's /auth/token or "
                      "/api/v2/dags, dbt Cloud's /api/v2/accounts/)")


def async_engine(on_event: Callable[[Event], None] | None = None,
                 on_secret: Callable[[str], None] | None = None, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for the triggerer: awaited Airflow lookups, then ``TRIGRUN_SECRET_*``."""
    return AsyncEngine(secrets=[AirflowSecrets().aresolve, EnvSecrets()], on_event=on_event,
                       on_secret=on_secret, **kwargs)
