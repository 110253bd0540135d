"""``TrigRunResource``: the engine's settings and secrets as a Dagster resource."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from .._engine import AsyncEngine, Engine
from .._flow import Event, is_quiet_poll
from .._loader import parse_jobs
from .._models import JobSpec
from .._results import RunResult, TriggerResult
from .._secrets import AnyResolver, EnvSecrets
from .._upstream import Upstream
from ._waits import wait_shared

RESOURCE_KEY = "trigrun"
_TLS_ENV = frozenset({"SSL_CERT_FILE", "SSL_CERT_DIR"})
_WARN_EVENTS = frozenset({"retry", "poll_error", "cancel"})
# What stops an op from the outside: Dagster's run termination, Ctrl-C in `dagster job execute`.
_INTERRUPTS = (dg.DagsterExecutionInterruptedError, KeyboardInterrupt)
# Dagster does not know the address its UI is served at; the webserver's own variable is the
# closest thing to a convention (the Dagster+ and Helm deployments set it).
DAGSTER_URL_ENV = "DAGSTER_WEBSERVER_URL"
DEFAULT_DAGSTER_URL = "http://localhost:3000"


def dagster_run_upstream(context: Any, dagster_url: str | None) -> Upstream | None:
    """The Dagster run an op or asset runs in, as the upstream of its fires (None outside a
    run: a sensor, a plain Python call)."""
    run = getattr(context, "dagster_run", None) if context is not None else None
    if run is None:
        return None
    base = (dagster_url or os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL).rstrip("/")
    return Upstream(kind="dagster", name=f"Dagster run {run.run_id} of {run.job_name}",
                    url=f"{base}/runs/{run.run_id}", run_id=run.run_id)


def as_spec(spec: JobSpec | Mapping[str, Any]) -> JobSpec:
    """A JobSpec from a spec or a dict in the job-spec format (errors name the job and field)."""
    if isinstance(spec, JobSpec):
        return spec
    return parse_jobs(dict(spec))[0]


class TrigRunResource(dg.ConfigurableResource):
    """Fires trigrun jobs from Dagster ops, sensors and schedules.

    ``secrets`` maps a secret name (``secret://name`` in a job spec) to its value. Give the
    values as ``dg.EnvVar("VARIABLE")``: Dagster then shows the variable's name in the UI and
    resolves the value only inside the run. ``secret://`` names not found there are looked up
    in the environment as ``{env_secrets_prefix}NAME`` unless the prefix is empty.

    No method here is called while definitions load, so loading never touches the network.
    """

    secrets: dict[str, str] = Field(
        default={}, repr=False,
        description="secret name -> value; give each value as EnvVar('VARIABLE_NAME') so the "
                    "UI shows the variable's name and never the value.")
    env_secrets_prefix: str = Field(
        default="TRIGRUN_SECRET_",
        description="Also resolve secret://name from the environment variable PREFIX + NAME "
                    "(upper-cased, non-alphanumerics as _). Empty turns this off.")
    verify: bool = Field(default=True, description="Verify TLS certificates.")
    ca_bundle: str | None = Field(default=None, description="Path of a CA bundle for TLS "
                                  "('system': the operating system's trust store).")
    cert: str | None = Field(default=None, description="Client certificate for mutual TLS: a "
                             "PEM with certificate and key, or the certificate with cert_key.")
    cert_key: str | None = Field(default=None, description="The client certificate's key file.")
    proxy: str | None = Field(
        default=None, repr=False,
        description="http(s) proxy for every job (a job's own request.proxy wins). With "
                    "credentials, give it as EnvVar('VARIABLE_NAME'). Default: the "
                    "environment's HTTP(S)_PROXY / NO_PROXY.")
    trust_env: bool = Field(default=True, description="Honour the environment's proxy "
                            "variables and SSL_CERT_FILE / SSL_CERT_DIR.")
    poll_interval_seconds: float | None = Field(
        default=None, description="Overrides every job's wait.poll_interval_seconds.")
    wait_timeout_seconds: float | None = Field(
        default=None, description="Overrides every job's wait.timeout_seconds.")
    dagster_url: str | None = Field(
        default=None,
        description="Address of this Dagster's UI, for the link a downstream run gets to the "
                    "Dagster run that started it (<dagster_url>/runs/<run_id>). Default: the "
                    "DAGSTER_WEBSERVER_URL environment variable, else http://localhost:3000.")
    max_requests_per_second: float | None = Field(
        default=None, gt=0,
        description="Ceiling on requests per second to each target origin, shared by every "
                    "fire, poll and cancel of one engine (an op's, a sensor tick's).")
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="More origins (scheme://host[:port]) the jobs' credentials may be sent "
                    "to, besides the one each job's URL names literally; needed when a URL's "
                    "host comes from run config or params (docs/security.md).")
    cancel_on_interrupt: bool = Field(
        default=True, description="When the Dagster run is terminated while waiting, cancel "
                                  "the downstream run before stopping.")

    # -- engine ------------------------------------------------------------------------------
    def _resolvers(self) -> list[AnyResolver]:
        resolvers: list[AnyResolver] = [dict(self.secrets)]
        if self.env_secrets_prefix:
            resolvers.append(EnvSecrets(prefix=self.env_secrets_prefix))
        return resolvers

    def _log(self, context: Any) -> Any:
        log = getattr(context, "log", None) if context is not None else None
        return log if log is not None else dg.get_dagster_logger("trigrun")

    def _on_event(self, context: Any) -> Callable[[Event], None]:
        log = self._log(context)

        def on_event(event: Event) -> None:
            # Each line is a row in Dagster's event log: polls that repeat a state are DEBUG.
            level = (logging.WARNING if event.kind in _WARN_EVENTS
                     else logging.DEBUG if is_quiet_poll(event) else logging.INFO)
            log.log(level, f"trigrun {event.kind}: {event.job}: {event.message}")

        return on_event

    @contextmanager
    def engine(self, context: Any = None) -> Iterator[Engine]:
        """A sync ``Engine`` whose attempts, retries and polls are logged to ``context.log``."""
        # log_events=False: context.log is the log; a managed `trigrun` logger would repeat it.
        with Engine(on_event=self._on_event(context), log_events=False,
                    **self._engine_settings()) as engine:
            yield engine

    def _engine_key(self) -> Hashable:
        """What tells two resources' engines apart (waits of equal ones share an engine). An
        engine reads the proxy and trust-store variables once, so they are part of it."""
        env = tuple(sorted((k, v) for k, v in os.environ.items()
                           if k.lower().endswith("_proxy") or k in _TLS_ENV)) \
            if self.trust_env else ()
        return (tuple(sorted(self.secrets.items())), self.env_secrets_prefix, self.verify,
                self.ca_bundle, self.cert, self.cert_key, self.proxy, self.trust_env,
                self.max_requests_per_second, tuple(self.allowed_origins), env)

    def _engine_settings(self) -> dict[str, Any]:
        cert = (self.cert, self.cert_key) if self.cert and self.cert_key else self.cert
        return {"secrets": self._resolvers(), "verify": self.ca_bundle or self.verify,
                "cert": cert, "proxy": self.proxy or None, "trust_env": self.trust_env,
                "max_requests_per_second": self.max_requests_per_second,
                "allowed_origins": list(self.allowed_origins)}

    def async_engine(self) -> AsyncEngine:
        """An ``AsyncEngine`` with this resource's settings (the completion sensor checks all
        its pending runs through one, in batched requests). Close it with ``aclose``."""
        return AsyncEngine(**self._engine_settings())

    def upstream(self, context: Any) -> Upstream | None:
        """What a fire from ``context``'s Dagster run tells the downstream run about it."""
        return dagster_run_upstream(context, self.dagster_url)

    # -- the three calls -----------------------------------------------------------------------
    def fire(self, spec: JobSpec | Mapping[str, Any], *, context: Any = None,
             scheduled_time: datetime | None = None, params: Mapping[str, Any] | None = None,
             engine: Engine | None = None,
             template_vars: Mapping[str, Any] | None = None) -> TriggerResult:
        """Send the trigger request (with retries). Failures are in the result, not raised.
        ``template_vars``: more names for the job's templates (e.g. ``partition_key``)."""
        spec = as_spec(spec)
        if engine is None:
            with self.engine(context) as own:
                return self.fire(spec, context=context, scheduled_time=scheduled_time,
                                 params=params, engine=own, template_vars=template_vars)
        extra: dict[str, Any] = dict(template_vars or {})
        if params:
            extra["params"] = dict(params)
        result = engine.fire(spec, extra or None, scheduled_time=scheduled_time,
                             upstream=self.upstream(context))
        self._log(context).info(f"trigrun: {_describe_fire(result)}")
        return result

    def wait(self, result: TriggerResult, *, context: Any = None,
             engine: Engine | None = None) -> RunResult:
        """Poll the downstream run to its end. If this Dagster run is terminated meanwhile, the
        downstream run is cancelled (``cancel_on_interrupt``) and the interrupt goes on.

        Without ``engine`` the wait joins the process's shared ``AsyncEngine``: concurrent
        waits on one target (the threads of an op firing several jobs) are checked with
        batched status requests. With a sync ``engine`` it polls through that engine, alone.
        """
        log = self._log(context)
        try:
            if engine is not None:
                run = engine.wait(result, poll_interval=self.poll_interval_seconds,
                                  timeout=self.wait_timeout_seconds)
            else:
                run = wait_shared(self._engine_key(), self._engine_settings, result,
                                  poll_interval=self.poll_interval_seconds,
                                  timeout=self.wait_timeout_seconds,
                                  on_event=self._on_event(context))
        except _INTERRUPTS:
            if self.cancel_on_interrupt and result.run_id is not None:
                log.warning(f"trigrun: this run was interrupted; cancelling downstream run "
                            f"{result.run_id} of job {result.job!r}")
                try:
                    if engine is not None:
                        ok = engine.cancel(result)
                    else:
                        with self.engine(context) as own:
                            ok = own.cancel(result)
                except Exception as exc:  # a failed cancel must not hide the interrupt
                    log.error(f"trigrun: cancelling run {result.run_id} failed: "
                              f"{type(exc).__name__}: {exc}")
                else:
                    log.warning(f"trigrun: cancel of downstream run {result.run_id}: "
                                f"{'requested' if ok else 'refused by the target'}")
            raise
        log.info(f"trigrun: downstream run {run.run_id} ended {run.state.value} after "
                 f"{run.polls} poll(s): {run.message}")
        return run

    def fire_and_wait(self, spec: JobSpec | Mapping[str, Any], *, context: Any = None,
                      scheduled_time: datetime | None = None,
                      params: Mapping[str, Any] | None = None,
                      wait: bool | None = None) -> tuple[TriggerResult, RunResult | None]:
        """Fire, then wait when the job waits (``wait`` overrides the spec). The run result is
        None when nothing was waited for (no wait, a skipped or failed fire)."""
        spec = as_spec(spec)
        with self.engine(context) as engine:
            result = self.fire(spec, context=context, scheduled_time=scheduled_time,
                               params=params, engine=engine)
            waits = spec.waits if wait is None else wait
            if not waits or not result.ok or result.skipped or result.run_id is None:
                return result, None
        return result, self.wait(result, context=context)


def _describe_fire(result: TriggerResult) -> str:
    if result.skipped:
        return f"job {result.job!r} skipped: {result.reason}"
    n = len(result.attempts)
    head = f"job {result.job!r} fired" if result.ok else f"job {result.job!r} failed"
    parts = [head]
    if result.status_code is not None:
        parts.append(f"HTTP {result.status_code}")
    parts.append(f"{result.duration_ms:.0f} ms, {n} attempt(s)")
    if result.run_id:
        parts.append(f"run {result.run_id}" + (f" ({result.run_url})" if result.run_url else ""))
    if result.adopted:
        parts.append(f"adopted: {result.reason}")
    if result.error:
        parts.append(result.error)
    return "; ".join(parts)
