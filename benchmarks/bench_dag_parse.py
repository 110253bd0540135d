"""How long ``trigrun.airflow.dags_from_specs`` takes on a jobs file of 1,000 jobs.

    python benchmarks/bench_dag_parse.py [--jobs 1000] [--runs 7] [--json]

Measured, each as the median of ``--runs`` runs:

- ``cold``: the file is read and validated every time (what a fresh DAG-processor subprocess
  pays: Airflow parses each DAG file in a new process);
- ``warm``: the parsed specs come from the per-process cache (same file, unchanged mtime);
- ``dagbag``: Airflow's own ``DagBag`` loading a DAG file that calls ``dags_from_specs`` -
  module import plus Airflow's checks of the 1,000 DAGs - in this process.

No network and no metadata database are used. Airflow runs with a throw-away ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TZS = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"]


def make_jobs(n: int) -> dict[str, Any]:
    """A realistic mix: raw Airflow requests, short-form dbt Cloud targets, webhooks."""
    jobs = []
    for i in range(n):
        common = {"name": f"job {i:04d}", "tags": ["bench", f"team-{i % 7}"],
                  "owner": f"team-{i % 7}",
                  "schedule": {"cron": f"{i % 60} {i % 24} * * *", "timezone": TZS[i % 4]}}
        if i % 3 == 0:
            jobs.append({**common, "request": {
                "url": f"https://airflow.example.com/api/v2/dags/etl_{i}/dagRuns",
                "method": "POST", "headers": {"Authorization": "secret://airflow-api-key"},
                "body": {"conf": {"source": "production", "i": i}}},
                "retry_policy": {"max_attempts": 3, "retry_on_statuses": [500, 502, 503]}})
        elif i % 3 == 1:
            jobs.append({**common, "target": {"type": "dbt_cloud", "account_id": 1,
                                              "job_id": i},
                         "auth": {"type": "bearer", "token": "secret://dbt-token"}})
        else:
            jobs.append({**common, "request": {"url": f"https://hooks.example.com/job/{i}",
                                               "body": {"day": "{{ ds }}"}}})
    return {"jobs": jobs}


def median_seconds(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trigrun-bench-"))
    os.environ.update({"AIRFLOW_HOME": str(work / "airflow"),
                       "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__CORE__DAGS_FOLDER": str(work / "dags"),
                       "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"})
    try:
        return _run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path) -> int:
    (work / "dags").mkdir()
    jobs_file = work / "jobs.json"
    jobs_file.write_text(json.dumps(make_jobs(args.jobs)))
    dag_file = work / "dags" / "trigrun_jobs.py"
    dag_file.write_text("from trigrun.airflow import dags_from_specs\n"
                        f"globals().update(dags_from_specs({str(jobs_file)!r}))\n")

    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag

    from trigrun.airflow import dag_factory, dags_from_specs
    import_s = time.perf_counter() - t0

    def cold() -> None:
        dag_factory._cache.clear()
        assert len(dags_from_specs(jobs_file)) == args.jobs

    def warm() -> None:
        assert len(dags_from_specs(jobs_file)) == args.jobs

    def dagbag() -> None:
        dag_factory._cache.clear()
        sys.modules.pop("trigrun_jobs", None)
        bag = DagBag(dag_folder=str(dag_file))
        assert not bag.import_errors, bag.import_errors
        assert len(bag.dags) == args.jobs

    cold()  # first call pays one-time imports (croniter, zoneinfo data)
    result = {
        "benchmark": "dags_from_specs",
        "jobs": args.jobs,
        "runs": args.runs,
        "cold_median_s": round(median_seconds(cold, args.runs), 4),
        "warm_median_s": round(median_seconds(warm, args.runs), 4),
        "dagbag_median_s": round(median_seconds(dagbag, max(3, args.runs // 2)), 4),
        "import_s": round(import_s, 3),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    result["cold_per_job_ms"] = round(result["cold_median_s"] * 1000 / args.jobs, 3)
    if args.json:
        print(json.dumps(result))
        return 0
    print(json.dumps(result, indent=2))
    print()
    print("| jobs | cold (read+validate+build) | warm (cached specs) | DagBag load | per job (cold) |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {args.jobs} | {result['cold_median_s']:.3f} s | {result['warm_median_s']:.3f} s "
          f"| {result['dagbag_median_s']:.3f} s | {result['cold_per_job_ms']:.2f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
