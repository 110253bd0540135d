"""Parse and load cost: trigrun's DAG/Definitions factories against dag-factory, same jobs.

``python -m benchmarks.bench_parse worker LIB --jobs N --runs R`` times, in this (fresh)
process, one library building the DAGs (or Dagster definitions) of an N-job YAML file, and
prints one JSON line. ``LIB`` is one of:

- ``trigrun``: ``trigrun.airflow.dags_from_specs(jobs.yaml)``;
- ``dagfactory``: astronomer's ``dagfactory.load_yaml_dags`` on the same jobs written as
  dag-factory YAML: per job one DAG (same id, ``CronTriggerTimetable`` with the job's time
  zone, owner, tags, description, ``catchup: false``, ``max_active_runs: 1``) with one
  ``HttpOperator`` task sending the job's request;
- ``dagster``: ``trigrun.dagster.build_trigrun_definitions(jobs.yaml)``;

What is timed (process CPU time; wall time kept too): the call, after the library is imported and has built a 1-job file once (so
one-time lazy imports are not counted as parsing), each run on a fresh copy of the file (so no
per-file cache helps). This is what Airflow's DAG processor pays per parse of a DAG file in a
process that already imported Airflow; the import cost is reported on its own.

``python -m benchmarks.bench_parse import MODULE`` times ``import MODULE`` in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TZS = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Tokyo"]


def make_jobs(n: int) -> dict[str, Any]:
    """The job mix of ``bench_dag_parse`` (the Airflow helper's benchmark), so both agree."""
    try:
        from .bench_dag_parse import make_jobs as theirs
    except ImportError:  # pragma: no cover - the helper's file is not there
        theirs = None
    if theirs is not None:
        result: dict[str, Any] = theirs(n)
        return result
    jobs = []
    for i in range(n):
        jobs.append({"name": f"job {i:04d}", "tags": ["bench"], "owner": f"team-{i % 7}",
                     "schedule": {"cron": f"{i % 60} {i % 24} * * *", "timezone": TZS[i % 4]},
                     "request": {"url": f"https://airflow.example.com/api/v2/dags/etl_{i}/dagRuns",
                                 "body": {"conf": {"i": i}}}})
    return {"jobs": jobs}


def _dump_yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def dagfactory_config(jobs: dict[str, Any]) -> dict[str, Any]:
    """The same DAGs in dag-factory's YAML: one HttpOperator task per job."""
    import trigrun

    config: dict[str, Any] = {"default": {"default_args": {"start_date": "2024-01-01"},
                                          "catchup": False, "max_active_runs": 1}}
    for raw in jobs["jobs"]:
        spec = trigrun.JobSpec.model_validate(raw)
        if spec.request is not None:
            url, method = spec.request.url, spec.request.method
            body, headers = spec.request.body, dict(spec.request.headers)
        else:  # a short-form target: the request its preset would send
            from trigrun._targets import preset_for

            call = preset_for(spec).trigger_call(None, "2024-01-01T00:00:00+00:00")
            url, method, body, headers = call.url, call.method, call.json, dict(call.headers)
        # dag-factory has no secret references: an Airflow template in their place.
        headers = {k: ("{{ conn.bench_api.password }}" if "secret://" in v else v)
                   for k, v in headers.items()}
        parts = urlsplit(url)
        assert spec.schedule is not None
        assert spec.schedule.cron is not None
        config[f"trigrun_{spec.slug}"] = {
            "schedule": {"__type__": "airflow.timetables.trigger.CronTriggerTimetable",
                         "cron": spec.schedule.cron, "timezone": spec.schedule.timezone},
            "default_args": {"owner": spec.owner or "airflow"},
            "description": spec.description or f"TrigRun job {spec.name!r}",
            "tags": sorted({"trigrun", *spec.tags}),
            "tasks": [{
                "task_id": "trigger",
                "operator": "airflow.providers.http.operators.http.HttpOperator",
                "http_conn_id": "bench_api",
                "endpoint": parts.path + (f"?{parts.query}" if parts.query else ""),
                "method": method,
                "data": json.dumps(body) if body is not None else None,
                "headers": headers,
            }],
        }
    return config


def write_files(n: int, where: Path) -> tuple[Path, Path]:
    jobs = make_jobs(n)
    trigrun_file = where / f"jobs_{n}.yaml"
    trigrun_file.write_text(_dump_yaml(jobs))
    df_file = where / f"dagfactory_{n}.yaml"
    df_file.write_text(_dump_yaml(dagfactory_config(jobs)))
    return trigrun_file, df_file


def _copy(src: Path, run: int) -> Path:
    dst = src.with_name(f"{src.stem}_run{run}{src.suffix}")
    dst.write_bytes(src.read_bytes())
    return dst


def worker(lib: str, n: int, runs: int, where: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    if lib == "trigrun":
        from trigrun.airflow import dags_from_specs

        def build(path: Path) -> int:
            return len(dags_from_specs(path))
    elif lib == "dagfactory":
        from dagfactory import load_yaml_dags

        def build(path: Path) -> int:
            found: dict[str, Any] = {}
            load_yaml_dags(globals_dict=found, config_filepath=str(path))
            return sum(1 for k in found if k.startswith("trigrun_"))
    elif lib == "dagster":
        from trigrun.dagster import build_trigrun_definitions

        def build(path: Path) -> int:
            defs = build_trigrun_definitions(path)
            return len(list(defs.jobs or []))
    elif lib == "dagster_hand":
        from ._dagster_hand import build
    else:
        raise SystemExit(f"unknown library {lib!r}")
    import_s = time.perf_counter() - t0

    tiny, tiny_df = write_files(1, where)
    build(tiny_df if lib == "dagfactory" else tiny)  # one-time lazy imports
    full, full_df = write_files(n, where)
    src = full_df if lib == "dagfactory" else full
    cpu: list[float] = []
    wall: list[float] = []
    built = 0
    for r in range(runs):
        path = _copy(src, r)
        t, c = time.perf_counter(), time.process_time()
        built = build(path)
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    if built != n:
        raise SystemExit(f"{lib}: built {built} of {n}")
    # CPU time is the measure (parsing is single-threaded CPU work, and CPU time hardly moves
    # when other processes load the machine); wall time is kept for reference.
    return {"lib": lib, "jobs": n, "runs": runs, "median_s": statistics.median(cpu),
            "wall_median_s": statistics.median(wall), "cpu_s": cpu, "wall_s": wall,
            "import_s": import_s}


def _hide_distribution(name: str) -> None:
    """As if distribution ``name`` were not installed, for entry-point discovery (Airflow's
    providers): ``distributions()`` of ``importlib.metadata`` and of its backport (what
    Airflow uses before Python 3.12) leave it out."""
    import importlib

    for module in ("importlib.metadata", "importlib_metadata"):
        try:
            metadata = importlib.import_module(module)
        except ImportError:
            continue
        everything = metadata.distributions

        def distributions(everything: Any = everything, **kwargs: Any) -> Any:
            # By the dist-info folder's name (``trigrun-0.1.0.dist-info``), not by
            # ``d.metadata["Name"]``: that parses every installed distribution's METADATA
            # file, ~0.3 s that the side without trigrun would pay and the other not.
            return (d for d in everything(**kwargs)
                    if not getattr(d, "_path", Path()).name.lower().startswith(name + "-"))

        metadata.distributions = distributions


def time_import(module: str, without: str | None = None) -> dict[str, Any]:
    if without:
        _hide_distribution(without)
    t0, c0 = time.perf_counter(), time.process_time()
    __import__(module)
    if module == "trigrun.airflow._provider":  # what Airflow's provider discovery runs
        sys.modules[module].get_provider_info()
    return {"module": module, "import_s": time.perf_counter() - t0,
            "import_cpu_s": time.process_time() - c0,
            "trigrun_modules": sorted(m for m in sys.modules if m.startswith("trigrun"))}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("lib")
    w.add_argument("--jobs", type=int, default=100)
    w.add_argument("--runs", type=int, default=3)
    i = sub.add_parser("import")
    i.add_argument("module")
    i.add_argument("--without", default=None, help="a distribution to hide from discovery")
    args = p.parse_args()
    if args.cmd == "import":
        print(json.dumps(time_import(args.module, args.without)))
        return
    with tempfile.TemporaryDirectory(prefix="trigrun-parse-") as tmp:
        where = Path(tmp)
        os.environ.setdefault("AIRFLOW_HOME", str(where / "airflow"))
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(where)
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
        result = worker(args.lib, args.jobs, args.runs, where)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
