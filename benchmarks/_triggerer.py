"""The ``triggerer`` section: thousands of trigrun triggers in a real ``airflow triggerer``.

What is real: Airflow 3's metadata database (SQLite, ``airflow db migrate``), the benchmark
DAG serialized by ``airflow dags reserialize``, DAG runs made by ``SerializedDAG.create_dagrun``,
deferred task instances with their ``trigger`` rows written as the execution API's deferral
route writes them (``benchmarks._triggerer_db``), and one ``airflow triggerer`` process (its
supervisor, which assigns triggers from the database, and its trigger runner, which runs them
all on one event loop and writes each trigger's log file). What is not: the status server the
triggers poll is the benchmark's fake of Airflow's REST listing (``benchmarks._server``), and
no scheduler or worker runs (nothing resumes the tasks once their triggers fire).

Measured, per size N: how long the triggerer takes to assign (database) and start (each
trigger's log file opened with its "starting" line) all N triggers; requests per interval
at the status server against the listing's pages once all are running; the triggerer's CPU
(supervisor + trigger runner, psutil on the process tree) per trigger per interval in that
window and its RSS per trigger above the idle triggerer's; and after the runs end, how long
until the task instances leave ``deferred`` (the event written to the database). The same N
through ``TrigRunTrigger.run()`` on a bare event loop (the capacity section's
``trigrun_trigger``) runs in the same section, minutes apart, for the ratio.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._common import PY, ROOT, StatusServer, child_env, percentile
from ._suite import Plan, _capacity_one

Log = Callable[[str], None]

# Intervals of the steady window (after every trigger has started and had one interval for
# its first check).
STEADY_INTERVALS = 4
PICKUP_TIMEOUT = 240.0


class _Server(StatusServer):
    """The status server with the ``/end`` control route (``benchmarks._triggerer_server``)."""

    def __init__(self) -> None:
        super().__init__("benchmarks._triggerer_server")


def _airflow_env(home: Path, capacity: int) -> dict[str, str]:
    """An isolated Airflow: its own home and SQLite database, nothing from the caller's."""
    env = {k: v for k, v in child_env().items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "trigrun-benchmark-only-not-a-secret",
        # What a platform team running one triggerer for N deferred tasks sets; the rest
        # (max_trigger_to_select_per_loop, heartbeats) stays at Airflow's defaults.
        "AIRFLOW__TRIGGERER__CAPACITY": str(capacity),
        # The spec's bearer token (secret://bench-token): no Airflow connection or variable
        # of that name exists, so trigrun's resolver chain ends at its environment source,
        # as in the bare-loop contender.
        "TRIGRUN_SECRET_BENCH_TOKEN": "bench-token-value",
        "PYTHONUNBUFFERED": "1",
        # SQLite lets one writer in at a time, and Airflow's default 5 s wait for the lock is
        # too short on a loaded 2-core machine: the triggerer's heartbeat (its own session)
        # waits behind its supervisor's writes for thousands of triggers and the job dies on
        # "database is locked". The live-test fixtures set the same (60 s).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "trigrun_bench_sqlite.CONNECT_ARGS",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(home), child_env().get("PYTHONPATH")])),
    })
    (home / "trigrun_bench_sqlite.py").write_text('CONNECT_ARGS = {"timeout": 60}\n')
    return env


def _airflow(env: dict[str, str], home: Path, *args: str, log_name: str) -> None:
    with (home / log_name).open("wb") as out:
        done = subprocess.run([PY, "-m", "airflow", *args], env=env, cwd=home, stdout=out,
                              stderr=subprocess.STDOUT, timeout=300, check=False)
    if done.returncode != 0:
        tail = (home / log_name).read_text(errors="replace").splitlines()[-15:]
        raise RuntimeError(f"airflow {' '.join(args)} failed: " + " | ".join(tail))


def _prepare(home: Path) -> Path:
    """Migrate a database and serialize the benchmark DAG once; each size starts from a copy."""
    from ._triggerer_db import DAG_FILE

    (home / "dags").mkdir(parents=True)
    (home / "dags" / "trigrun_triggerer_bench.py").write_text(DAG_FILE)
    env = _airflow_env(home, 1000)
    _airflow(env, home, "db", "migrate", log_name="db-migrate.log")
    _airflow(env, home, "dags", "reserialize", log_name="reserialize.log")
    template = home / "template.db"
    shutil.copyfile(home / "airflow.db", template)
    return template


def _tree(pid: int) -> list[Any]:
    import psutil  # type: ignore[import-untyped]  # Airflow's dependency, no stubs here

    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def _tree_cpu(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        with contextlib.suppress(Exception):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _tree_rss(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(Exception):
            total += p.memory_info().rss
    return int(total)


def _query(db: Path, sql: str) -> Any:
    # Read-only peeks at Airflow's tables (counts); every write is Airflow's own code.
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as c:
        return c.execute(sql).fetchone()[0]


def _started(logs: Path) -> int:
    """Triggers whose log file the triggerer has opened (its "trigger ... starting" line)."""
    count = 0
    stack = [logs]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif ".log.trigger." in entry.name:
                    count += 1
    return count


@contextlib.contextmanager
def _triggerer(env: dict[str, str], home: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    with (home / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen([PY, "-m", "airflow", "triggerer"], env=env, cwd=home,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _alive(proc: subprocess.Popen[bytes], home: Path, n: int) -> None:
    if proc.poll() is not None:
        tail = [ln for ln in (home / f"triggerer-{n}.log").read_text(errors="replace")
                .splitlines() if "Deprecat" not in ln][-6:]
        raise RuntimeError(f"the triggerer exited ({proc.returncode}): " + " | ".join(tail))


def _log_times(logs: Path) -> dict[str, list[float]]:
    """Per trigger, from its log file (written by the triggerer): when it started, when
    trigrun logged its first status and when it fired its event (epoch seconds)."""
    from datetime import datetime

    out: dict[str, list[float]] = {"start": [], "first": [], "fired": []}
    for path in logs.rglob("*.log.trigger.*"):
        seen: dict[str, float] = {}
        with contextlib.suppress(OSError), path.open("rb") as f:
            for raw in f:
                try:
                    rec = json.loads(raw)
                    when = datetime.fromisoformat(rec["timestamp"]).timestamp()
                except (ValueError, KeyError, TypeError):
                    continue
                event = str(rec.get("event", ""))
                if event.startswith("trigger ") and event.endswith(" starting"):
                    seen.setdefault("start", when)
                elif event.startswith("waiting for run "):
                    seen.setdefault("first", when)
                elif event == "Trigger fired event":
                    seen.setdefault("fired", when)
        for key, when in seen.items():
            out[key].append(when)
    return out


def _one(home: Path, template: Path, n: int, interval: float, log: Log) -> dict[str, Any]:
    db = home / "airflow.db"
    shutil.copyfile(template, db)
    shutil.rmtree(home / "logs", ignore_errors=True)
    env = _airflow_env(home, n)
    row: dict[str, Any] = {"n": n, "interval": interval}
    with _Server() as server, _triggerer(env, home, f"triggerer-{n}") as proc:
        deadline = time.monotonic() + 120
        while not _query(db, "SELECT count(*) FROM job WHERE job_type = 'TriggererJob' "
                             "AND state = 'running'"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the triggerer did not start: "
                                   + (home / f"triggerer-{n}.log").read_text()[-2000:])
            time.sleep(0.5)
        time.sleep(3 * interval)  # its start-up done: the idle triggerer's figures
        cpu0, t_idle = _tree_cpu(proc.pid), time.monotonic()
        time.sleep(2 * interval)
        idle_share = (_tree_cpu(proc.pid) - cpu0) / (time.monotonic() - t_idle)
        row["idle_cpu_per_interval_ms"] = idle_share * interval * 1000
        rss_idle = _tree_rss(proc.pid)
        row["rss_idle_mb"] = rss_idle / 2**20

        # The downstream runs, all triggered now and running until /end; then the deferrals.
        server._get(f"/reset?polls=100000&interval={interval}&n={n}&targets=1&spread=0")
        log(f"triggerer: deferring {n} task instances")
        ins = subprocess.run([PY, "-m", "benchmarks._triggerer_db", "defer", "--n", str(n),
                              "--port", str(server.port), "--interval", str(interval)],
                             env={**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
        if ins.returncode != 0:
            raise RuntimeError("deferring failed: " + ins.stderr[-2000:])
        got = json.loads(ins.stdout.splitlines()[-1])
        committed, committed_wall = time.monotonic(), got["committed_at"]
        row.update({"deferred": got["deferred"], "insert_s": got["create_s"] + got["defer_s"]})

        # Start phase: assigned in the database, then started (log file opened).
        log(f"triggerer: waiting for {n} triggers to start")
        assigned_s = started_s = None
        deadline = committed + PICKUP_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            now = time.monotonic()
            if assigned_s is None and _query(
                    db, "SELECT count(*) FROM trigger WHERE triggerer_id IS NOT NULL") >= n:
                assigned_s = now - committed
            if _started(home / "logs") >= n:
                started_s = now - committed
                break
            time.sleep(1.0)
        _alive(proc, home, n)
        row.update({"assigned_s": assigned_s, "started_s": started_s})
        if started_s is None:
            row["error"] = (f"{_started(home / 'logs')} of {n} triggers started within "
                            f"{PICKUP_TIMEOUT:.0f} s")

        # Steady window: one interval for the last trigger's first check, then whole ones.
        time.sleep(interval)
        reads0 = len(server.stats()["reads"])
        cpu0, t0 = _tree_cpu(proc.pid), time.monotonic()
        rss_peak = 0
        while time.monotonic() < t0 + STEADY_INTERVALS * interval:
            rss_peak = max(rss_peak, _tree_rss(proc.pid))
            time.sleep(0.5)
        cpu, span = _tree_cpu(proc.pid) - cpu0, time.monotonic() - t0
        reads = len(server.stats()["reads"]) - reads0
        intervals = span / interval
        row.update({
            "pages": -(-n // 100),
            "steady_per_interval": reads / intervals,
            "steady_cpu_per_run_interval_us": cpu / (n * intervals) * 1e6,
            # Less what the idle triggerer spends anyway (its database loop, heartbeats).
            "steady_net_cpu_per_run_interval_us": max(0.0, cpu - idle_share * span)
            / (n * intervals) * 1e6,
            "steady_cpu_share": cpu / span,
            "rss_per_wait_kb": max(0, rss_peak - rss_idle) / n / 1024,
            "rss_peak_mb": rss_peak / 2**20,
        })

        # The end: every run ends now; the triggers fire, the supervisor writes the events.
        log("triggerer: ending the runs")
        server._get("/end")
        ended, ended_wall = time.monotonic(), time.time()
        left: list[float] = []
        remaining = n
        # Generous: on SQLite the supervisor commits each event on its own (~35-40 per
        # second here), so 5,000 events take minutes.
        deadline = ended + 6 * interval + 240
        while remaining and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.25)
            now = remaining
            remaining = _query(db, "SELECT count(*) FROM task_instance WHERE state = 'deferred'")
            left += [time.monotonic() - ended] * (now - remaining)
        _alive(proc, home, n)
        row.update({
            "left_first_s": left[0] if left else None,
            "left_p50_s": percentile(left, 50) if left else None,
            "left_p99_s": percentile(left, 99) if left else None,
            "left_all_s": left[-1] if len(left) == n else None,
            "still_deferred": remaining,
            # Task instances the supervisor moved out of `deferred` per second, first to last.
            "left_per_s": ((len(left) - 1) / (left[-1] - left[0])
                           if len(left) > 1 and left[-1] > left[0] else None),
            # The event each task would resume with (next_kwargs), as the triggerer wrote it.
            "success_events": _query(db, "SELECT count(*) FROM task_instance WHERE state = "
                                         "'scheduled' AND next_kwargs LIKE '%\"success\"%'"),
            "failed_triggers": _query(db, "SELECT count(*) FROM task_instance WHERE "
                                          "next_method = '__fail__'"),
        })
    # The trigger runner's watchdog: how long its event loop did not get to run (logged from
    # 0.2 s, Airflow's default threshold), over the whole run.
    blocked = [float(m) for m in re.findall(
        r"async thread was blocked for ([0-9.]+) seconds",
        (home / f"triggerer-{n}.log").read_text(errors="replace"))]
    row.update({"blocked_count": len(blocked), "blocked_max_s": max(blocked, default=0.0)})
    times = _log_times(home / "logs")
    start = [t - committed_wall for t in times["start"]]
    first = [t - committed_wall for t in times["first"]]
    fired = [t - ended_wall for t in times["fired"]]
    row.update({
        "log_started": len(start), "log_first": len(first), "log_fired": len(fired),
        "start_p50_s": percentile(start, 50), "start_max_s": max(start, default=float("nan")),
        "first_p50_s": percentile(first, 50), "first_p99_s": percentile(first, 99),
        "first_max_s": max(first, default=float("nan")),
        "fired_p50_s": percentile(fired, 50), "fired_p99_s": percentile(fired, 99),
        "fired_max_s": max(fired, default=float("nan")),
    })
    return row


def triggerer_section(plan: Plan, log: Log) -> dict[str, Any]:
    """Each size through a real ``airflow triggerer`` and through a bare event loop."""
    sizes, interval = plan.triggerer_sizes, plan.triggerer_interval
    home = Path(tempfile.mkdtemp(prefix="trigrun-bench-triggerer-"))
    rows: list[dict[str, Any]] = []
    try:
        log("triggerer: airflow db migrate, dags reserialize")
        template = _prepare(home)
        for n in sizes:
            log(f"triggerer: airflow triggerer N={n} interval={interval:g}s")
            try:
                rows.append({"contender": "airflow_triggerer",
                             **_one(home, template, n, interval, log)})
            except Exception as exc:  # reported, the other rows still run
                rows.append({"contender": "airflow_triggerer", "n": n, "interval": interval,
                             "error": f"{type(exc).__name__}: {str(exc)[-1500:]}"})
            log(f"triggerer: bare event loop trigrun_trigger N={n}")
            with StatusServer() as server:
                bare = _capacity_one(server, "trigrun_trigger", "", None, n, 1, interval,
                                     BARE_POLLS)
            rows.append({**bare, "contender": "bare_loop"})
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"interval": interval, "steady_intervals": STEADY_INTERVALS, "rows": rows}


# The bare loop's runs (capacity-section rules): statuses per run, so its steady window has
# STEADY_INTERVALS - 0.5 intervals after the 2-interval start phase.
BARE_POLLS = 8


def render(add: Callable[[str], None], sec: dict[str, Any]) -> None:
    """The section's part of ``benchmarks/README.md``."""
    iv = sec["interval"]
    add("## A real `airflow triggerer` with thousands of trigrun triggers")
    add("")
    add("What Airflow's own per-trigger work adds to `TrigRunTrigger.run()`. **Real**: one "
        "`airflow triggerer` process (its supervisor, which assigns triggers to itself from "
        "the database and writes their events back, and its trigger runner subprocess, which "
        "runs every trigger on one event loop and sends each trigger's log lines to the "
        "supervisor, which writes one log file per trigger), Airflow's metadata database "
        "(SQLite, `airflow db migrate`), a DAG with one deferrable `TrigRunOperator` task "
        "(`airflow dags reserialize`), N DAG runs made by the serialized DAG's "
        "`create_dagrun`, and their N task instances deferred as the execution API's "
        "deferral route writes them: a `Trigger` row (the model) holding "
        "`TrigRunTrigger.serialize()`'s kwargs through serde, the task instance `deferred` "
        "with `trigger_id`, `next_method`, `next_kwargs`, `trigger_timeout` "
        "(`benchmarks/_triggerer_db.py`; the route itself, called in process, costs ~45 ms "
        "per task here, so its statements run directly). **Not real**: the target the "
        "triggers poll is the benchmark's status server, a fake of Airflow 3's "
        "`GET /api/v2/dags/{dag}/dagRuns` listing (the same as in the capacity section); no "
        "scheduler, worker or API server runs, so nothing resumes the tasks after their "
        "triggers fire. Airflow's settings are its defaults except `[triggerer] capacity` = N "
        "(default 1,000); `max_trigger_to_select_per_loop` stays at 50, so the triggerer "
        "assigns itself at most 50 task triggers per loop of its supervisor.")
    add("")
    add(f"All N downstream runs are triggered at once and run until every trigger has "
        f"started plus one interval ({iv:g} s) and {sec['steady_intervals']} steady "
        "intervals; then they all end at once. The N deferrals are committed together with "
        "the triggerer already running (idle; its idle CPU and RSS measured first).")
    add("")
    add("- **assigned / started**: from the deferrals' commit until all N triggers are "
        "assigned to the triggerer in the database / have opened their log file (the trigger "
        "runner's \"trigger ... starting\" line); **first status**: from the commit to "
        "trigrun's first log line of the trigger (its first status), p50 / max, from the "
        "trigger log files' timestamps.")
    add("- **CPU per trigger per interval**: the triggerer's process tree (psutil: supervisor "
        "and trigger runner) in the steady window / (N x intervals); in brackets, less what "
        "the idle triggerer spends anyway (its database loop and heartbeat, the row's "
        "*idle* figure per interval). **RSS per trigger**: the tree's peak in the steady "
        "window less the idle triggerer's, / N.")
    add("- **events**: after the runs end, from the end to each trigger's \"Trigger fired "
        "event\" log line (p50 / max; in brackets how many trigger log files hold that line: "
        "the supervisor closes a trigger's log file when the trigger finishes, and a line it "
        "reads after that goes to the triggerer's own log), and until the task instances "
        "leave `deferred` in the database (the supervisor's `Trigger.submit_event`, one "
        "commit per event: p50 / all, and how many per second); **ok**: task instances "
        "left `scheduled` with a `success` event in `next_kwargs`.")
    add("- **loop blocked**: the trigger runner's watchdog lines (\"Triggerer's async thread "
        "was blocked for ...\", logged from 0.2 s, Airflow's default threshold) over the run.")
    add("- **bare loop**: the same N through `TrigRunTrigger.run()` on one plain event loop "
        "(the capacity section's `trigrun_trigger`, waits started over one interval, the "
        "steady window after two), measured right after the triggerer run of that N.")
    add("")
    add("| run in | N | assigned / started | first status p50 / max | requests per interval "
        "(pages) | CPU per trigger per interval (less idle) | RSS per trigger | events fired "
        "p50 / max; left `deferred` p50 / all | ok | loop blocked (count, longest) |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = sec["rows"]
    for r in rows:
        n = r["n"]
        if r["contender"] == "bare_loop":
            if "error" in r:
                add(f"| bare event loop | {n:,} | failed: {r['error'][:200]} |" + " |" * 7)
                continue
            add(f"| bare event loop | {n:,} | - | {_f(r['first_p50_s'], 2)} / "
                f"{_f(r['first_max_s'], 2)} s | {_f(r['steady_per_interval'])} ({r['pages']}) "
                f"| {_f(r['steady_cpu_per_run_interval_us'], 1)} us | "
                f"{_f(r['rss_per_wait_kb'], 1)} KiB | - | {r['ok']:,}/{n:,} | - |")
            continue
        if "error" in r and "pages" not in r:
            add(f"| `airflow triggerer` | {n:,} | failed: {r['error'][:300]} |" + " |" * 7)
            continue
        add(f"| `airflow triggerer` (idle: {_f(r['idle_cpu_per_interval_ms'], 0)} ms CPU per "
            f"interval, {_f(r['rss_idle_mb'], 0)} MiB) | {n:,} | {_f(r['assigned_s'], 1)} / "
            f"{_f(r['started_s'], 1)} s | {_f(r['first_p50_s'], 1)} / "
            f"{_f(r['first_max_s'], 1)} s | {_f(r['steady_per_interval'])} ({r['pages']}) | "
            f"{_f(r['steady_cpu_per_run_interval_us'], 1)} us "
            f"({_f(r['steady_net_cpu_per_run_interval_us'], 1)} us) | "
            f"{_f(r['rss_per_wait_kb'], 1)} KiB | {_f(r['fired_p50_s'], 1)} / "
            f"{_f(r['fired_max_s'], 1)} s ({r['log_fired']:,} lines); "
            f"{_f(r['left_p50_s'], 1)} / {_f(r['left_all_s'], 1)} s "
            f"({_f(r.get('left_per_s'), 0)} per s) | {r['success_events']:,}/{n:,} | "
            f"{r.get('blocked_count', '-')}, {_f(r.get('blocked_max_s'), 2)} s |")
    add("")
    for r in rows:
        if r["contender"] != "airflow_triggerer" or "pages" not in r:
            continue
        bare = next((b for b in rows if b["contender"] == "bare_loop" and b["n"] == r["n"]
                     and "error" not in b), None)
        if bare is None:
            continue
        add(f"- N = {r['n']:,}: the triggerer's CPU per trigger per interval is "
            f"{_ratio(r['steady_cpu_per_run_interval_us'], bare['steady_cpu_per_run_interval_us'])}"
            f" of the bare loop's ("
            f"{_ratio(r['steady_net_cpu_per_run_interval_us'], bare['steady_cpu_per_run_interval_us'])}"
            f" less its idle cost), its RSS per trigger "
            f"{_ratio(r['rss_per_wait_kb'], bare['rss_per_wait_kb'])}; requests per interval "
            f"{_f(r['steady_per_interval'])} vs {_f(bare['steady_per_interval'])}.")
        if r.get("error"):
            add(f"  Not complete: {r['error'][:300]}")
    add("")


def _f(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b or a != a or b != b:
        return "-"
    return f"{a / b:.1f}x"
