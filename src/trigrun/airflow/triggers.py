"""``TrigRunTrigger``: waits in the triggerer for a downstream run that a worker started.

The trigger only polls. The trigger request is always sent by the worker before deferring, so a
triggerer restart, a trigger moved to another triggerer, or a rebuilt trigger never sends it
again: the trigger is rebuilt from its kwargs (``serialize()``) and resumes polling the same
``run_id``.

Its kwargs are stored in plain text in Airflow's database (Airflow 3 does not encrypt trigger
kwargs), so they hold the spec as JSON with ``secret://`` references only, plus ``run_id``,
``run_url``, ``end_time`` (epoch seconds), ``poll_interval``, ``conn_id`` and ``rates`` (the
connection's ``max_requests_per_second`` by origin: no secret). References are
resolved inside the triggerer with awaited Airflow lookups (``AirflowSecrets.aresolve``), and
every value found is registered with Airflow's secrets masker.

Behaviour, shared with the engine's wait loop (``trigrun._flow``):

- one ``TriggerEvent`` with ``status`` ``success``, ``error``, ``cancelled`` or ``timeout``,
  ``run_id``, ``message`` and ``run_url`` (the shape of dbt Cloud's DbtCloudRunJobTrigger),
  plus ``state``, ``polls`` and ``duration_ms``;
- its own deadline, ``end_time``: Airflow does not enforce ``execution_timeout`` while a task is
  deferred. At the deadline the run is cancelled when the spec says ``wait.cancel_on_timeout``;
- transient poll failures (network errors, 408/425/429, 5xx) are retried with backoff up to
  ``wait.max_consecutive_poll_errors`` in a row; every path sleeps, there is no hot loop;
- ``on_kill`` (Airflow 3.3+: the user marked the deferred task failed/success or cleared it)
  cancels the downstream run. Triggerer shutdowns and redistribution do not call it, so a
  rolling restart never cancels work.

A deferring task passes ``not_before`` = its deferral time + ``SETTLE_SECONDS`` (10 s): the
event is held until then. Airflow 3.3.2's scheduler fails a deferred task whose trigger fires
before it has drained the worker's "success" from the deferral exit (the task is already
queued again when that stale event arrives: apache/airflow#67287, #72716; only the
``scheduled`` case is guarded). Seen here with the LocalExecutor when a downstream run ended
within about 5 s of the deferral - e.g. a retry that adopts a finished run. Long runs never
wait for it; short ones finish at most 10 s later instead of failing.

One ``AsyncEngine`` - one httpx connection pool and one Airflow-token cache - is shared by all
trigrun triggers running on the same event loop (a triggerer runs all its triggers on one
loop), and so is each origin's rate limit: a connection's requests-per-second ceiling
(``rates``) applies to every trigger waiting on that origin, the lowest one asked for winning.
It is created on first use and closed when the last trigger on that loop finishes, so
no pool outlives its loop (``dag.test()`` runs each trigger in a fresh ``asyncio.run``).
Progress lines from the shared engine reach the log of the trigger that caused them through a
context variable.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import marshal
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ._compat import add_local_mask  # first: a clear ImportError without Airflow

# isort: split
from airflow.triggers.base import BaseTrigger, TriggerEvent

from .. import AsyncEngine, Event, JobSpec, SecretNotFound, TrigRunError
from .._flow import is_quiet_poll
from ._spec import event_status
from .hooks import async_engine
from .secrets import explain_missing

CLASSPATH = "trigrun.airflow.triggers.TrigRunTrigger"
SETTLE_SECONDS = 10.0


class _WaitLog:
    """The running trigger's logger, and the wait's description until its first line."""

    __slots__ = ("header", "log")

    def __init__(self, log: Any, header: str | None = None) -> None:
        self.log = log
        self.header = header


_current_log: contextvars.ContextVar[_WaitLog | None] = contextvars.ContextVar(
    "trigrun_trigger_log", default=None)


def _on_event(event: Event) -> None:
    # Each line costs the triggerer ~0.1 ms (Airflow's structlog): the wait's description
    # shares a line with its first check, then only new states of the run are INFO.
    current = _current_log.get()
    if current is None:
        return
    if current.header is not None:
        header, current.header = current.header, None
        current.log.info("%s; %s", header, event.message)
    elif is_quiet_poll(event):
        current.log.debug("%s", event.message)
    else:
        current.log.info("%s", event.message)


def _on_secret(value: str) -> None:
    # Registered locally at once; amask_secret (called by the resolver) tells the supervisor.
    try:
        add_local_mask(value)
    except Exception:  # pragma: no cover - masking is best effort on top of trigrun's redactor
        logging.getLogger(__name__).debug("could not register a secret with the masker")


@dataclass
class _Shared:
    engine: AsyncEngine
    users: int = 0


_ENGINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = weakref.WeakKeyDictionary()


class _Lease:
    """``async with _Lease() as engine``: the loop's shared engine, closed with its last user."""

    async def __aenter__(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        shared = _ENGINES.get(loop)
        if shared is None:
            shared = _ENGINES[loop] = _Shared(async_engine(on_event=_on_event,
                                                           on_secret=_on_secret,
                                                           log_events=False))
        shared.users += 1
        self._loop, self._shared = loop, shared
        return shared.engine

    async def __aexit__(self, *exc: object) -> None:
        shared = self._shared
        shared.users -= 1
        if shared.users == 0:
            if _ENGINES.get(self._loop) is shared:
                del _ENGINES[self._loop]
            await shared.engine.aclose()


# kwargs key -> (the validated spec, the first kwargs dict seen with that content)
_SPECS: dict[bytes | str, tuple[JobSpec, dict[str, Any]]] = {}


def _spec_key(data: dict[str, Any]) -> bytes | str:
    """The cache key of a spec's kwargs. ``marshal`` (format 2: no back-references, so the
    same content gives the same bytes) keeps types apart (``True``/``1``/``1.0``) and costs a
    few microseconds; a canonical ``json.dumps(sort_keys=True)`` cost ~0.1 ms per trigger,
    seconds of loop time when a triggerer starts tens of thousands of them. Key order only
    decides whether two equal specs share an entry, never which spec is returned."""
    try:
        return marshal.dumps(data, 2)
    except ValueError:  # a value marshal does not know (kwargs are JSON, so not expected)
        return json.dumps(data, sort_keys=True, default=str)


def _shared_spec(data: dict[str, Any]) -> tuple[JobSpec, dict[str, Any]]:
    """The validated spec and one kwargs dict of the same content, shared by every trigger on
    this triggerer with equal kwargs.

    A triggerer often waits on many runs of one job (catch-up, mapped tasks): one frozen
    JobSpec for all of them, instead of a validation and a few hundred long-lived objects
    per wait, also lets the engine's per-spec caches serve them all. The triggerer builds each
    trigger from its own copy of the kwargs (a dozen dicts and lists per spec); a running
    trigger keeps the shared copy instead, so its own becomes garbage at once. Fewer
    long-lived objects per wait means fewer and shorter full garbage collections, which scan
    all of Airflow's objects too: they set the triggerer's worst poll lateness
    (benchmarks/README.md)."""
    key = _spec_key(data)
    got = _SPECS.get(key)
    if got is None:
        if len(_SPECS) >= 1024:
            _SPECS.clear()
        got = _SPECS[key] = (JobSpec.model_validate(data), data)
    return got


def _spec_of(data: dict[str, Any]) -> JobSpec:
    """The validated spec of a trigger's ``spec`` kwargs (shared, see ``_shared_spec``)."""
    return _shared_spec(data)[0]


def _apply_rates(engine: AsyncEngine, rates: dict[str, float] | None) -> None:
    """The connection's requests-per-second ceiling on the shared engine's origin limit, which
    every trigger waiting on that origin shares (the lowest ceiling asked for wins)."""
    for origin, rps in (rates or {}).items():
        if not rps or rps <= 0:
            continue
        limit = engine._limit_of(origin)
        limit.gap = max(limit.gap, 1.0 / float(rps))


def shared_engine_count() -> int:
    """How many shared engines are open (one per event loop with a running trigrun trigger)."""
    return len(_ENGINES)


class TrigRunTrigger(BaseTrigger):
    """Poll a downstream run until it ends, then fire one event.

    :param spec: the job spec as a JSON dict (``secret://`` references only).
    :param run_id: the downstream run to watch.
    :param end_time: epoch seconds; the trigger's own deadline.
    :param poll_interval: seconds between status checks.
    :param run_url: the run's page, when known.
    :param conn_id: the ``trigrun`` connection the spec was completed from (informational:
        the spec already holds its references).
    :param cancel_on_kill: cancel the run in ``on_kill`` (the operator: yes; the sensor,
        which watches a run it did not start: no).
    :param not_before: epoch seconds before which no event is fired (the deferring task sets
        ``SETTLE_SECONDS`` after its deferral; see the module docstring).
    :param rates: ``{origin: requests per second}`` from the ``trigrun`` connection's
        ``max_requests_per_second``: a ceiling on the triggerer's shared engine for that origin.
    """

    def __init__(self, spec: dict[str, Any], run_id: str, end_time: float,
                 poll_interval: float, run_url: str | None = None, conn_id: str | None = None,
                 cancel_on_kill: bool = True, not_before: float | None = None,
                 rates: dict[str, float] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.spec = spec
        self.run_id = str(run_id)
        self.end_time = float(end_time)
        self.poll_interval = float(poll_interval)
        self.run_url = run_url
        self.conn_id = conn_id
        self.cancel_on_kill = cancel_on_kill
        self.not_before = not_before
        self.rates = dict(rates) if rates else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "spec": self.spec,
            "run_id": self.run_id,
            "end_time": self.end_time,
            "poll_interval": self.poll_interval,
            "run_url": self.run_url,
            "conn_id": self.conn_id,
            "cancel_on_kill": self.cancel_on_kill,
            "not_before": self.not_before,
            "rates": self.rates,
        }

    def _event(self, status: str, message: str, **extra: Any) -> TriggerEvent:
        payload = {"status": status, "run_id": self.run_id, "message": message,
                   "run_url": extra.pop("run_url", None) or self.run_url, **extra}
        return TriggerEvent(payload)  # type: ignore[no-untyped-call]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # One event, computed before the yield: after it the triggerer may never resume us.
        event = await self._outcome()
        if self.not_before is not None and (early := self.not_before - time.time()) > 0:
            await asyncio.sleep(early)
        yield event

    async def _outcome(self) -> TriggerEvent:
        # One logger for every trigger of the class (LoggingMixin.logger() caches it on the
        # class), not a structlog proxy per trigger: the triggerer routes each line to its
        # trigger's log by context variables it binds per trigger, not by the logger object.
        wait_log = _WaitLog(type(self).logger())
        token = _current_log.set(wait_log)
        try:
            try:
                spec, self.spec = _shared_spec(self.spec)
            except ValueError as exc:
                return self._event("error", f"the trigger's spec is invalid: {exc}")
            wait_log.header = (f"waiting for run {self.run_id} of job {spec.name!r} (poll every "
                               f"{self.poll_interval:g}s, deadline in "
                               f"{self.end_time - time.time():.0f}s)")
            async with _Lease() as engine:
                _apply_rates(engine, self.rates)
                try:
                    result = await engine.wait(spec, self.run_id,
                                               poll_interval=self.poll_interval,
                                               end_time=self.end_time)
                except SecretNotFound as exc:  # say which connection/variable to create
                    return self._event("error", str(explain_missing(exc, "the triggerer")))
                except TrigRunError as exc:  # messages hold no values
                    return self._event("error", str(exc))
                except Exception as exc:  # e.g. a refused Airflow login while polling
                    text = engine.state.redactor.text(f"{type(exc).__name__}: {exc}")
                    return self._event("error", f"job {spec.name!r}: waiting for run "
                                       f"{self.run_id} failed: {text}")
            return self._event(event_status(result.state.value), result.message,
                               run_url=result.run_url, state=result.state.value,
                               polls=result.polls, duration_ms=round(result.duration_ms, 1),
                               raw_status=_jsonable(result.raw_status))
        finally:
            _current_log.reset(token)

    async def on_kill(self) -> None:
        """The user acted on the deferred task: cancel the downstream run (best effort)."""
        if not self.cancel_on_kill:
            return
        spec = _spec_of(self.spec)
        token = _current_log.set(_WaitLog(self.log))
        try:
            async with _Lease() as engine:
                ok = await engine.cancel(spec, self.run_id)
            self.log.info("cancel of run %s %s", self.run_id,
                          "requested" if ok else "was refused or failed")
        finally:
            _current_log.reset(token)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
