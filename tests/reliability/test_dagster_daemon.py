"""Dagster daemon restarted across a schedule tick: the tick's run is launched once, and the
target gets one trigger.

A real ``dagster-daemon`` (its own process group, a SQLite instance in a temporary
``DAGSTER_HOME``, the ``DefaultRunCoordinator`` and ``DefaultRunLauncher`` of
``tests/fixtures/dagster_server.py``) serves ``live_dags/dagster_tick.py``: a trigrun schedule
that ticks every minute, running by default. The daemon is SIGKILLed a few seconds before a
minute, so the tick falls while no daemon runs; a new daemon catches the tick up and launches
its run (``run_key`` = the tick); that daemon is killed too and a third one started, which must
not launch the tick again. The target is a local webhook that starts one run per idempotency
key (``RunTarget``): it counts what reached it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import trigrun
from tests.fixtures.dagster_server import DAGSTER_YAML
from tests.helpers.faults import FaultServer, RunTarget

from ._report import Report, seconds_bound
from ._secrets import TOKEN, hits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

DEFS = Path(__file__).parent / "live_dags" / "dagster_tick.py"
JOB = "reliability_daemon_tick"
NAME = "reliability daemon tick"  # the job's name in DEFS: its idempotency keys derive from it
BOUND = 300.0


class Daemon:
    """``dagster-daemon run`` processes, one at a time, on one instance."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0

    def start(self) -> float:
        self.started += 1
        log = (self.home / f"daemon{self.started}.log").open("ab")
        with log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-f", str(DEFS)],
                env=self.env, cwd=self.home, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        return time.time()

    def kill(self) -> None:
        """SIGKILL to the daemon's whole process group (its code server, run workers)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def wait_scheduling(self, since: float, timeout: float = 120) -> None:
        """Until this daemon's scheduler has sent a heartbeat (it is evaluating schedules)."""
        import dagster as dg

        deadline = time.monotonic() + timeout
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.poll() is None, self.tail()
                beat = instance.get_daemon_heartbeats().get("SCHEDULER")
                if beat is not None and beat.timestamp > since:
                    return
                time.sleep(0.5)
        raise TimeoutError(f"the daemon's scheduler never reported:\n{self.tail()}")

    def wait_schedule_stored(self, timeout: float = 120) -> None:
        """Until the scheduler has stored the schedule's state (running by default, from its
        first evaluation on): a tick after that is one the daemon must launch."""
        import dagster as dg
        from dagster._core.scheduler.instigation import InstigatorType

        deadline = time.monotonic() + timeout
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            while time.monotonic() < deadline:
                assert self.proc is not None
                assert self.proc.poll() is None, self.tail()
                if instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE):
                    return
                time.sleep(0.5)
        raise TimeoutError(f"the schedule's state was never stored:\n{self.tail()}")

    def tail(self) -> str:
        path = self.home / f"daemon{self.started}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, FaultServer, RunTarget]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    import dagster as dg

    # The instance's SQLite storage made here first: two processes creating its tables at
    # once fail ("table already exists").
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
    with FaultServer() as hook:
        target = RunTarget(hook, echo=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "PYTEST_"))}
        env.update({"DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1",
                    "PYTHONUNBUFFERED": "1", "TRIGRUN_REL_HOOK": hook.url})
        d = Daemon(home, env)
        try:
            yield d, hook, target
        finally:
            d.kill()


def _tick_runs(home: Path) -> list[tuple[str, str, str]]:
    """(run id, run key, status) of every run of the job."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(job_name=JOB))
        return [(r.run_id, r.tags.get("dagster/run_key", ""), r.status.value) for r in runs]


def stamp_of(tick: float) -> str:
    """The run key Dagster gives the tick at ``tick`` (epoch seconds)."""
    return datetime.fromtimestamp(tick, timezone.utc).isoformat()


def _runs_of(home: Path, stamp: str) -> list[tuple[str, str, str]]:
    return [r for r in _tick_runs(home) if r[1] == stamp]


def test_daemon_killed_across_a_tick_launches_it_once(
        daemon: tuple[Daemon, FaultServer, RunTarget], report: Report,
        request: pytest.FixtureRequest) -> None:
    d, hook, target = daemon
    t0 = time.monotonic()
    since = d.start()
    d.wait_scheduling(since)
    d.wait_schedule_stored()  # ticks after the schedule's stored start are launched
    # The next minute at least eight seconds away: the daemon dies three seconds before it.
    now = time.time()
    tick = (int(now) // 60 + 1) * 60
    if tick - now < 8:
        tick += 60
    time.sleep(max(0.0, tick - 3 - time.time()))
    # Other minutes may tick while daemons start (before) or run (after) the tick under test:
    # everything below is counted for this tick's run key and idempotency key only.
    stamp = stamp_of(tick)
    named = trigrun.JobSpec.model_validate({"name": NAME, "request": {"url": hook.url}})
    key = trigrun.idempotency_key(named, datetime.fromtimestamp(tick, timezone.utc))
    assert stamp not in [r[1] for r in _tick_runs(d.home)], "the tick under test was not due yet"
    d.kill()
    time.sleep(max(0.0, tick + 2 - time.time()))  # the tick passes with no daemon running

    since = d.start()
    d.wait_scheduling(since)
    deadline = time.monotonic() + 120
    runs = _runs_of(d.home, stamp)
    while not (runs and runs[0][2] in ("SUCCESS", "FAILURE")):
        assert time.monotonic() < deadline, (runs, d.tail())
        time.sleep(1)
        runs = _runs_of(d.home, stamp)
    after_catch_up = list(runs)
    # The tick's run finished; a third daemon takes over from the second.
    d.kill()
    since = d.start()
    d.wait_scheduling(since)
    time.sleep(5)  # several scheduler iterations
    runs = _runs_of(d.home, stamp)
    d.kill()
    seconds = time.monotonic() - t0
    every_post = hook.requests_to("/trigger", "POST")
    posts = [r for r in every_post if r.headers.get("idempotency-key") == key]
    target_runs = sum(1 for r in target.runs if r.key == key)
    # Any other trigger is another minute's (its own key), never one without a key.
    others = {r.headers.get("idempotency-key") for r in every_post} - {key}
    stored = [(p.name, p.read_bytes()) for p in sorted(d.home.rglob("*")) if p.is_file()]
    leaks = hits(stored, [TOKEN])
    print(f"daemon restart: {seconds:.1f}s; tick {stamp}: runs {runs}; {len(posts)} trigger "
          f"request(s), {target_runs} run(s) at the target")
    report.add(request.node.nodeid, "scale", (30,), [
        "Dagster daemon SIGKILLed just before a schedule tick, restarted after it (the tick "
        "is caught up), then killed and restarted again",
        str(target_runs), "1", str(1 - min(1, target_runs)),
        str(max(0, target_runs - 1)),
        f"{len(runs)} Dagster run for the tick (run_key: the tick), status "
        f"{runs[0][2] if runs else 'none'}; {len(posts)} trigger request(s); "
        f"{len(leaks)} credential hits in the instance's storage and logs",
        seconds_bound(0, BOUND)],
        figures=(target_runs, 1, 1 - min(1, target_runs),
                 max(0, target_runs - 1)))

    assert [r[1] for r in after_catch_up] == [stamp]  # caught up once, with the tick's key
    assert len(runs) == 1
    assert runs[0][2] == "SUCCESS"
    assert target_runs == 1
    assert len(posts) == 1
    assert None not in others
    assert len(others) <= 3, others  # the minutes the test spans, each at most once
    assert [r.headers.get("authorization") for r in posts] == [f"Bearer {TOKEN}"]
    assert leaks == []
    assert seconds < BOUND
