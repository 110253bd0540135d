"""The benchmark sections: each runs its contenders in fresh processes and returns plain data."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._batch_worker import capacity_window
from ._common import PY, ROOT, StatusServer, child_env, median, percentile, run_child


@dataclass(frozen=True)
class Plan:
    """How much to run. ``full`` is the documented run; ``quick`` a 1-2 minute smoke run."""

    name: str
    poll_sizes: tuple[int, ...]
    poll_interval: float
    poll_polls: int
    poll_extras_at: int | None  # N at which the references and ablations run (None: never)
    # N at which trigrun and the peers run a second time, in reverse order, with what tells
    # the less disturbed of the two runs apart (the measure of that size's target).
    poll_repeat_at: tuple[tuple[int, str], ...]
    fire_requests: int
    parse_sizes: tuple[int, ...]
    parse_runs: int
    import_runs: int
    dag_parse_helper: bool
    batch_sizes: tuple[tuple[int, int], ...] = ()  # (N waits, targets) of the batch section
    # (N waits, targets, interval s) of the capacity section
    capacity_sizes: tuple[tuple[int, int, float], ...] = ()
    # N triggers of the triggerer section (a real `airflow triggerer`), and their interval
    triggerer_sizes: tuple[int, ...] = ()
    triggerer_interval: float = 5.0


FULL = Plan("full", (100, 1000, 5000), 5.0, 4, 1000,
            ((1000, "cpu_per_poll_us"), (5000, "late_p99_ms")), 2000, (10, 100, 1000),
            3, 3, True, ((100, 1), (1000, 1), (5000, 1), (5000, 50)),
            tuple((n, t, iv) for iv in (5.0, 30.0) for n, t in (
                (5000, 1), (10000, 1), (20000, 1), (50000, 1), (20000, 50))),
            (2000, 5000), 5.0)
QUICK = Plan("quick", (200,), 2.0, 3, None, (), 300, (100,), 2, 2, False, ((200, 1), (1000, 1)),
             ((2000, 1, 2.0),), (300,), 2.0)

PEERS = ("trigrun_wait", "trigrun_trigger", "http_sensor", "dbt_loop")
EXTRAS = ("aiohttp_shared", "trigrun_wait_nogrid", "trigrun_wait_httpx")
LABELS = {
    "trigrun_wait": "trigrun `AsyncEngine.wait`",
    "trigrun_trigger": "trigrun `TrigRunTrigger.run()`",
    "http_sensor": "Airflow HTTP provider `HttpSensorTrigger`",
    "dbt_loop": "`DbtCloudRunJobTrigger`-style loop (aiohttp session per poll)",
    "aiohttp_shared": "reference: hand-written loop, one shared aiohttp session",
    "trigrun_wait_nogrid": "ablation: trigrun, exact sleeps (no wake-up coalescing)",
    "trigrun_wait_httpx": "ablation: trigrun on a given httpx `AsyncClient`, exact sleeps",
}
PEER_CONTENDERS = ("http_sensor", "dbt_loop")  # what users would pick instead
# A second source tree measured in the same run, as a baseline for ratios (capacity rows,
# light imports): TRIGRUN_BENCH_BASELINE_SRC=/path/to/old/src.
BASELINE_ENV = "TRIGRUN_BENCH_BASELINE_SRC"

Log = Callable[[str], None]


def _poll_timeout(n: int, interval: float, polls: int) -> float:
    # Generous: the slowest contender at N=5000 needs about a minute; never unbounded.
    return 90.0 + n * 0.04 + interval * polls * 3


def poll_section(plan: Plan, log: Log, peers: tuple[str, ...] = PEERS) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with StatusServer() as server:
        for index, n in enumerate(plan.poll_sizes):
            contenders = list(peers)
            if plan.poll_extras_at == n:
                contenders += EXTRAS
            # Rotate the order per size, so no contender always runs first (or last).
            shift = index % len(contenders)
            contenders = contenders[shift:] + contenders[:shift]
            for name in contenders:
                log(f"poll: {name} N={n}")
                rows.append(_poll_one(server, name, n, plan))
            measure = dict(plan.poll_repeat_at).get(n)
            if measure is not None:
                # The target's comparison, once more in reverse order: a contender whose run
                # met a load spike from outside gets a second chance, and each keeps its less
                # disturbed run (the lower CPU per poll: outside load only ever adds to it).
                for name in reversed([c for c in contenders if c in peers]):
                    log(f"poll: {name} N={n} (second run)")
                    again = _poll_one(server, name, n, plan)
                    first = next(r for r in rows if r["contender"] == name and r["n"] == n)
                    if _better(again, first, measure):
                        again["other_run"] = {k: first.get(k) for k in _KEPT}
                        rows[rows.index(first)] = again
                    else:
                        first["other_run"] = {k: again.get(k) for k in _KEPT}
    return {"interval": plan.poll_interval, "polls_per_run": plan.poll_polls, "rows": rows,
            "repeated_at": [list(x) for x in plan.poll_repeat_at]}


_KEPT = ("cpu_per_poll_us", "late_p50_ms", "late_p99_ms", "connections", "error")


def _better(a: dict[str, Any], b: dict[str, Any], measure: str) -> bool:
    if "error" in a:
        return False
    if "error" in b:
        return True
    return bool(a[measure] < b[measure])


def _poll_one(server: StatusServer, name: str, n: int, plan: Plan) -> dict[str, Any]:
    server.reset(plan.poll_polls)
    t0 = time.monotonic()
    try:
        got = run_child("benchmarks._poll_worker", [
            name, "--port", str(server.port), "--control", str(server.control_port),
            "--n", str(n), "--interval", str(plan.poll_interval),
            "--polls", str(plan.poll_polls)],
            timeout=_poll_timeout(n, plan.poll_interval, plan.poll_polls))
    except subprocess.TimeoutExpired:
        got = {"error": f"did not finish within {_poll_timeout(n, plan.poll_interval, plan.poll_polls):.0f} s"}
    stats = server.stats()
    row: dict[str, Any] = {"contender": name, "n": n, "elapsed_s": time.monotonic() - t0}
    if "error" in got:
        row["error"] = got["error"]
        return row
    requests = stats["requests"]
    late = [(g - plan.poll_interval) * 1000 for g in stats["gaps"]]
    row.update({
        "ok": got["ok"],
        "requests": requests,
        "cpu_s": got["cpu_s"],
        "cpu_per_poll_us": got["cpu_s"] / requests * 1e6 if requests else float("nan"),
        "rss_per_wait_kb": max(0, got["rss_peak"] - got["rss_base"]) / n / 1024,
        "late_p50_ms": percentile(late, 50),
        "late_p99_ms": percentile(late, 99),
        "late_max_ms": max(late) if late else float("nan"),
        "connections": stats["connections"],
        "max_open": stats["max_open"],
        "wall_s": got["wall_s"],
    })
    return row


def fire_section(plan: Plan, log: Log) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with StatusServer() as server:
        for mode in ("sync", "async"):
            log(f"fire: {mode}")
            got = run_child("benchmarks._fire_worker", [
                mode, "--port", str(server.port), "--requests", str(plan.fire_requests)],
                timeout=300)
            if "error" in got:
                out[mode] = {"error": got["error"]}
                continue
            rows = {}
            for name, lat in got["latency_ms"].items():
                rows[name] = {
                    "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
                    "cpu_per_request_us": got["cpu_s"][name] / len(lat) * 1e6,
                    "requests": len(lat),
                }
                if "concurrent_cpu_s" in got:
                    rows[name]["concurrent_cpu_per_request_us"] = (
                        got["concurrent_cpu_s"][name] / plan.fire_requests * 1e6)
            out[mode] = {"rows": rows, "concurrency": got.get("concurrency")}
    return out


def parse_section(plan: Plan, log: Log) -> dict[str, Any]:
    rows = []
    for n in plan.parse_sizes:
        libs = ["trigrun", "dagfactory", "dagster", "dagster_hand"]
        for lib in libs:
            log(f"parse: {lib} {n} jobs")
            got = run_child("benchmarks.bench_parse", ["worker", lib, "--jobs", str(n),
                                                       "--runs", str(plan.parse_runs)],
                            timeout=600)
            rows.append({"lib": lib, "jobs": n, **got})
    helper: dict[str, Any] | None = None
    if plan.dag_parse_helper and (ROOT / "benchmarks" / "bench_dag_parse.py").exists():
        log("parse: bench_dag_parse (DagBag load of 1,000 jobs)")
        helper = run_child("benchmarks.bench_dag_parse", ["--jobs", "1000", "--runs", "3",
                                                          "--json"], timeout=600)
    return {"rows": rows, "dag_parse_helper": helper}


IMPORTS = (
    ("`import trigrun`", "trigrun"),
    ("`import trigrun.airflow` (lazy: Airflow is not imported yet)", "trigrun.airflow"),
    ("`import trigrun.airflow.operators` (what `from trigrun.airflow import TrigRunOperator` "
     "loads, Airflow included)", "trigrun.airflow.operators"),
    ("`import trigrun.dagster` (lazy: Dagster is not imported yet)", "trigrun.dagster"),
    ("`import trigrun.dagster._factories` (what `from trigrun.dagster import "
     "build_trigrun_definitions` loads, Dagster included)", "trigrun.dagster._factories"),
    ("`import trigrun.airflow._provider` and `get_provider_info()` (what Airflow's provider "
     "discovery runs in every Airflow process)", "trigrun.airflow._provider"),
    ("reference: `import airflow.sdk`", "airflow.sdk"),
)


def import_section(plan: Plan, log: Log) -> dict[str, Any]:
    rows = []
    imports: list[tuple[str, str, dict[str, str] | None]] = [(lb, m, None) for lb, m in IMPORTS]
    base_src = os.environ.get(BASELINE_ENV)
    if base_src:  # the light imports again on the baseline tree, for the ratio
        env = child_env(PYTHONPATH=os.pathsep.join([base_src, str(ROOT)]))
        imports += [(f"{lb} *baseline*", m, env) for lb, m in IMPORTS
                    if m in ("trigrun", "trigrun.airflow._provider")]
    for label, module, env in imports:
        log(f"import: {module}")
        times: list[float] = []
        cpu: list[float] = []
        error = None
        for _ in range(plan.import_runs):
            got = run_child("benchmarks.bench_parse", ["import", module], timeout=120, env=env)
            if "error" in got:
                error = got["error"]
                break
            times.append(got["import_s"])
            cpu.append(got["import_cpu_s"])
        rows.append({"label": label, "module": module, "median_s": median(times),
                     "cpu_median_s": median(cpu), "runs": len(times),
                     **({"error": error} if error else {})})
    return {"rows": rows, "airflow_sdk": _airflow_sdk_pair(plan, log)}


def _airflow_sdk_pair(plan: Plan, log: Log) -> dict[str, Any]:
    """``import airflow.sdk`` with trigrun's provider entry point and with it hidden (the
    distribution left out of discovery: uninstalling is not possible in a shared venv),
    alternating, so both sides see the same load."""
    runs = max(5, plan.import_runs * 3)
    side: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []}
                                              for k in ("with", "without")}
    loaded: list[str] = []
    for i in range(runs):
        for key in (("with", "without") if i % 2 == 0 else ("without", "with")):
            log(f"import: airflow.sdk {key} trigrun ({i + 1}/{runs})")
            got = run_child("benchmarks.bench_parse", ["import", "airflow.sdk", *(
                ["--without", "trigrun"] if key == "without" else [])], timeout=120)
            if "error" in got:
                return {"error": got["error"]}
            side[key]["wall"].append(got["import_s"])
            side[key]["cpu"].append(got["import_cpu_s"])
            if key == "with":
                loaded = got.get("trigrun_modules", [])
    return {"runs": runs, "trigrun_modules": loaded,
            **{f"{k}_median_s": median(v["wall"]) for k, v in side.items()},
            **{f"{k}_cpu_median_s": median(v["cpu"]) for k, v in side.items()}}


def warm_bytecode(log: Log) -> None:
    """Compile every module once into the shared bytecode cache (as an installed package has)."""
    log("warming the bytecode cache")
    code = ("import trigrun, trigrun.airflow.operators, trigrun.airflow.triggers, "
            "trigrun.airflow.dag_factory, airflow.providers.http.triggers.http, aiohttp, httpx\n"
            "for m in ('dagfactory', 'trigrun.dagster'):\n"
            "    try:\n        __import__(m)\n    except Exception:\n        pass\n")
    subprocess.run([PY, "-c", code], cwd=ROOT, env=child_env(), capture_output=True,
                   timeout=600, check=False)



BATCH_CONTENDERS = ("trigrun_wait", "trigrun_trigger")
# Runs last 5 intervals here (6 statuses), so 3 intervals are steady: every wait past its
# first check, no run ended yet.
BATCH_POLLS = 6


def batch_section(plan: Plan, log: Log) -> dict[str, Any]:
    """N waits on T DAGs with batched status polls (the async engine's default)."""
    rows: list[dict[str, Any]] = []
    interval = plan.poll_interval
    with StatusServer() as server:
        for n, targets in plan.batch_sizes:
            for name in BATCH_CONTENDERS:
                log(f"batch: {name} N={n} targets={targets}")
                server.reset(BATCH_POLLS, interval)
                timeout = _poll_timeout(n, interval, BATCH_POLLS)
                try:
                    got = run_child("benchmarks._batch_worker", [
                        name, "--port", str(server.port), "--control", str(server.control_port),
                        "--n", str(n), "--targets", str(targets), "--interval", str(interval),
                        "--polls", str(BATCH_POLLS)], timeout=timeout)
                except subprocess.TimeoutExpired:
                    got = {"error": f"did not finish within {timeout:.0f} s"}
                row: dict[str, Any] = {"contender": name, "n": n, "targets": targets}
                if "error" in got:
                    rows.append({**row, "error": got["error"]})
                    continue
                stats = server.stats()
                kinds = stats["by_kind"]
                # The steady part: from one interval after the last wait started (every wait
                # has had its first check) to the first run's end; whole intervals only.
                reads = sorted(stats["reads"])
                start, end = 2 * interval, (BATCH_POLLS - 1) * interval
                steady = [t for t in reads if start <= t < end]
                intervals = (end - start) / interval  # < 1: too few polls per run to tell
                waited = n * (got["wall_s"] / interval)  # run-intervals waited in all
                late = got.get("late_ms") or []
                rows.append({**row, "ok": got["ok"], "cpu_s": got["cpu_s"],
                             "wall_s": got["wall_s"],
                             "list_requests": kinds.get("airflow_list", 0)
                             + kinds.get("airflow_ended", 0),
                             "run_reads": kinds.get("airflow", 0),
                             "requests": kinds.get("airflow_list", 0)
                             + kinds.get("airflow_ended", 0) + kinds.get("airflow", 0),
                             "steady_per_interval": (len(steady) / intervals
                                                     if intervals >= 1 else None),
                             "pages": targets * -(-(n // targets) // 100),
                             "cpu_per_run_interval_us": got["cpu_s"] / waited * 1e6,
                             "steady_cpu_per_run_interval_us": (
                                 got["steady_cpu_s"] / (n * intervals) * 1e6
                                 if got.get("steady_cpu_s") is not None and intervals >= 1
                                 else None),
                             "rss_per_wait_kb": max(0, got["rss_peak"] - got["rss_base"]) / n
                             / 1024,
                             "late_p50_ms": percentile(late, 50) if late else None,
                             "late_p99_ms": percentile(late, 99) if late else None})
    return {"interval": interval, "polls_per_run": BATCH_POLLS, "rows": rows}


# Capacity: statuses per run (the run ends this many intervals, less 1.5, after its trigger).
# At 5 s: a steady window of 3 intervals after the 2-interval start phase; at 30 s, 2 (so
# every wait has two statuses inside it): _batch_worker.capacity_window.
CAPACITY_POLLS = {5.0: 7, 30.0: 6}


def capacity_section(plan: Plan, log: Log) -> dict[str, Any]:
    """Many waits in one process: start phase and steady window reported apart."""
    rows: list[dict[str, Any]] = []
    trees: list[tuple[str, dict[str, str] | None]] = [("", None)]
    base_src = os.environ.get(BASELINE_ENV)
    if base_src:
        trees.append((" (baseline)", child_env(PYTHONPATH=os.pathsep.join([base_src,
                                                                             str(ROOT)]))))
    with StatusServer() as server:
        for n, targets, interval in plan.capacity_sizes:
            polls = CAPACITY_POLLS.get(interval, 6)
            for name in BATCH_CONTENDERS:
                for suffix, env in trees:
                    log(f"capacity: {name}{suffix} N={n} targets={targets} "
                        f"interval={interval:g}s")
                    rows.append(_capacity_one(server, name, suffix, env, n, targets,
                                              interval, polls))
    return {"polls": CAPACITY_POLLS, "baseline": bool(base_src), "rows": rows}


def _capacity_one(server: StatusServer, name: str, suffix: str, env: dict[str, str] | None,
                  n: int, targets: int, interval: float, polls: int) -> dict[str, Any]:
    server.reset(polls, interval)
    timeout = _poll_timeout(n, interval, polls) + n * 0.01
    row: dict[str, Any] = {"contender": name, "tree": suffix.strip(" ()") or "this",
                           "n": n, "targets": targets, "interval": interval}
    try:
        got = run_child("benchmarks._batch_worker", [
            name, "--port", str(server.port), "--control", str(server.control_port),
            "--n", str(n), "--targets", str(targets), "--interval", str(interval),
            "--polls", str(polls), "--capacity"], timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        got = {"error": f"did not finish within {timeout:.0f} s"}
    if "error" in got:
        return {**row, "error": got["error"]}
    reads = sorted(server.stats()["reads"])
    lo, hi = capacity_window(polls)
    begin, end = lo * interval, hi * interval
    intervals = (end - begin) / interval
    first = got["first_ms"]
    late = got["steady_late_ms"]
    gen0 = got["gc_steady_gen0"]
    return {**row, "ok": got["ok"], "wall_s": got["wall_s"],
            "pages": targets * -(-(n // targets) // 100),
            "start_requests": sum(1 for t in reads if t < begin),
            "steady_per_interval": sum(1 for t in reads if begin <= t < end) / intervals,
            "first_p50_s": percentile(first, 50) / 1000, "first_p99_s": percentile(first, 99)
            / 1000, "first_max_s": max(first, default=float("nan")) / 1000,
            "first_within_2": sum(1 for f in first if f <= 2 * interval * 1000) / n,
            "steady_cpu_per_run_interval_us": (got["steady_cpu_s"] / (n * intervals) * 1e6
                                               if got.get("steady_cpu_s") else None),
            "rss_per_wait_kb": max(0, got["rss_peak"] - got["rss_base"]) / n / 1024,
            "late_p50_ms": percentile(late, 50), "late_p99_ms": percentile(late, 99),
            "late_max_ms": max(late, default=float("nan")),
            "gc_steady_share": (got["gc_steady_s"] / got["steady_cpu_s"]
                                if got.get("steady_cpu_s") else None),
            "gc_s": got["gc_s"], "gc_max_pause_ms": got["gc_max_pause_ms"],
            "gc_steady_max_pause_ms": got["gc_steady_max_pause_ms"],
            # gen-0 collections happen every threshold0 net new tracked objects.
            "tracked_allocs_per_wait_interval": gen0 * got["gc_threshold0"] / (n * intervals)}
