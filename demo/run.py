"""`make demo`: trigrun end to end on local, SQLite-backed Airflow and Dagster.

1. Starts Airflow 3 (api-server, scheduler, dag-processor, triggerer; SQLite; LocalExecutor)
   serving ``demo/airflow_dags`` and Dagster (webserver; SQLite) serving ``demo/dagster_defs.py``,
   both on 127.0.0.1 (Dagster as ``dagster dev``: webserver and daemon, for the link sensor).
2. Airflow -> Dagster: runs the DAG ``refresh_dashboards_via_dagster``, whose deferrable
   ``TrigRunOperator`` launches the Dagster job ``refresh_dashboards`` over GraphQL from the worker
   and waits for it in Airflow's triggerer.
3. Dagster -> Airflow: evaluates the trigrun schedule ``nightly_warehouse_load`` for today's
   tick (Dagster's own ``build_schedule_context``; the schedule itself stays off) and
   materializes the asset ``trigrun/nightly_warehouse_load`` by hand with that run config: the
   run triggers the Airflow DAG ``warehouse_load`` over REST v2 with a JWT from
   ``/auth/token`` and waits for it.
4. Prints each execution log and where to look in each UI, then stops every process it started
   and removes its working folder (``--keep`` keeps the servers up until Enter is pressed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.airflow_server import start_airflow_server  # noqa: E402
from tests.fixtures.dagster_server import (  # noqa: E402
    DAGSTER_YAML,
    free_port,
    start_dagster_server,
)

WORK = REPO / ".demo"
AIRFLOW_DAG = "refresh_dashboards_via_dagster"
AIRFLOW_TARGET_DAG = "warehouse_load"
DAGSTER_TARGET_JOB = "refresh_dashboards"
LOCATION = "trigrun_demo"

TAGS = """query Tags($runId: ID!) {
  runOrError(runId: $runId) { ... on Run { tags { key value } } }
}"""
RUNS: list[tuple[str, str, str, str]] = []  # (direction, downstream run, state, URL)
DAGSTER_RUN_FROM_AIRFLOW: list[str] = []
EVENTS = """query Events($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection { events { __typename
      ... on MaterializationEvent { assetKey { path } metadataEntries { label __typename
        ... on TextMetadataEntry { text } ... on UrlMetadataEntry { url }
        ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue }
        ... on BoolMetadataEntry { boolValue } ... on JsonMetadataEntry { jsonString } } } } }
  }
}"""


def say(msg: str) -> None:
    print(msg, flush=True)


def step(t0: float, msg: str) -> None:
    say(f"[{time.monotonic() - t0:6.1f}s] {msg}")


def show_log(title: str, log: dict[str, Any]) -> None:
    say(f"\n=== {title} ===")
    for key in ("job", "ok", "status", "duration_ms", "run_id", "run_url", "state",
                "idempotency_key", "scheduled_time", "message"):
        if key in log and log[key] is not None:
            say(f"  {key:<16} {log[key]}")
    if log.get("attempts") is not None:
        attempts = log["attempts"]
        if isinstance(attempts, list):
            attempts = ", ".join(f"#{a['number']}: {a['status_code'] or a['error']} "
                                 f"({a['duration_ms']} ms)" for a in attempts)
        say(f"  {'attempts':<16} {attempts}")
    if log.get("response") is not None:
        text = json.dumps(log["response"]) if not isinstance(log["response"], str) else log["response"]
        say(f"  {'response':<16} {text[:300]}{'...' if len(text) > 300 else ''}")


def _metadata_value(entry: dict[str, Any]) -> Any:
    for key in ("text", "url", "intValue", "floatValue", "boolValue"):
        if key in entry:
            return entry[key]
    if "jsonString" in entry:
        return json.loads(entry["jsonString"])
    return None


def airflow_to_dagster(af: Any, dg: Any, t0: float) -> bool:
    af.wait_for_dag(AIRFLOW_DAG, timeout=180)
    run = af.trigger(AIRFLOW_DAG)
    run_id = run["dag_run_id"]
    step(t0, f"Airflow: started DAG run {run_id} of {AIRFLOW_DAG}; its TrigRunOperator launches "
         f"the Dagster job {DAGSTER_TARGET_JOB} and defers")
    final = af.wait_for_run(AIRFLOW_DAG, run_id, timeout=420)
    step(t0, f"Airflow: DAG run {run_id} ended {final['state']}")
    r = af.api("GET", f"/dags/{AIRFLOW_DAG}/dagRuns/{run_id}/taskInstances/refresh_dashboards/"
                      "xcomEntries/return_value", params={"deserialize": True})
    log: dict[str, Any] = {}
    if r.status_code == 200:
        value = r.json().get("value")
        log = json.loads(value) if isinstance(value, str) else dict(value or {})
    show_log("Airflow -> Dagster: execution log (XCom return_value of refresh_dashboards)", log)
    dagster_run = log.get("run_id")
    status = dg.run_status(dagster_run) if dagster_run else None
    say(f"  {'dagster run':<16} {dagster_run} is {status} on the Dagster side")
    if dagster_run:
        tags = dg.graphql(TAGS, {"runId": dagster_run})["runOrError"].get("tags") or []
        for tag in tags:
            if tag["key"].startswith("trigrun/upstream") or tag["key"] == "user":
                say(f"  {'run tag':<16} {tag['key']} = {tag['value']}")
        DAGSTER_RUN_FROM_AIRFLOW.append(str(dagster_run))
        link = upstream_link(dg, dagster_run)
        say(f"  {'run event log':<16} {link or '(the link sensor wrote nothing)'}")
    RUNS.append(("Airflow -> Dagster", f"Dagster run {dagster_run}", str(status),
                 str(log.get("run_url"))))
    return final["state"] == "success" and status == "SUCCESS"


def dagster_to_airflow(af: Any, dg: Any, t0: float) -> bool:
    os.environ["TRIGRUN_DEMO_AIRFLOW_URL"] = af.base_url
    import warnings

    import dagster

    from demo.dagster_defs import defs

    with warnings.catch_warnings():  # "won't resolve resources": the tick needs none
        warnings.simplefilter("ignore", UserWarning)
        schedule = defs.get_schedule_def("nightly_warehouse_load_schedule")
    tick = datetime.now(ZoneInfo("Europe/Berlin")).replace(hour=1, minute=0, second=0,
                                                            microsecond=0)
    with dagster.build_schedule_context(scheduled_execution_time=tick) as ctx:
        result = schedule.evaluate_tick(ctx)
    request = (result.run_requests or [None])[0]
    if request is None:
        say(f"  the schedule skipped the tick: {result.skip_message}")
        return False
    step(t0, f"Dagster: schedule tick {tick.isoformat()} -> run_key {request.run_key}")
    af.wait_for_dag(AIRFLOW_TARGET_DAG, timeout=180)
    # Launched by hand (the schedule is off): the run carries the tick's run config and
    # trigrun's scheduled-time tag, not the schedule's name.
    # (evaluate_tick adds dagster/schedule_name to the request: left out.)
    tags = {k: v for k, v in request.tags.items() if not k.startswith("dagster/")}
    run_id = dg.launch(schedule.job_name, request.run_config, location=LOCATION, tags=tags)
    step(t0, f"Dagster: materializing trigrun/nightly_warehouse_load (run {run_id} of "
         f"{schedule.job_name}); it triggers the Airflow DAG {AIRFLOW_TARGET_DAG} over REST v2 "
         "and waits")
    status = dg.wait_for_status(run_id, timeout=420)
    step(t0, f"Dagster: run {run_id} ended {status}")
    events = dg.graphql(EVENTS, {"runId": run_id})["logsForRun"].get("events", [])
    log: dict[str, Any] = {}
    for ev in events:
        if ev["__typename"] == "MaterializationEvent":
            log.update({e["label"]: _metadata_value(e) for e in ev["metadataEntries"]})
    log["status"] = log.get("status_code")
    log["attempts"] = log.get("attempt_log", log.get("attempts"))
    show_log("Dagster -> Airflow: execution log (asset metadata of trigrun/nightly_warehouse_load)",
             log)
    af_run = log.get("run_id")
    run = af.dag_run(AIRFLOW_TARGET_DAG, af_run) if af_run else {}
    af_state = run.get("state")
    say(f"  {'airflow run':<16} {af_run} is {af_state} on the Airflow side")
    if run.get("note"):
        say(f"  {'run note':<16} {run['note']}")
    RUNS.append(("Dagster -> Airflow", f"Airflow run {af_run}", str(af_state).upper(),
                 str(log.get("run_url"))))
    launched = dg.run(run_id) or {}
    posing = "dagster/schedule_name" in (launched.get("tags") or {})
    say(f"  {'launched as':<16} "
        f"{'the schedule (wrong)' if posing else 'a hand-launched materialization'}")
    return status == "SUCCESS" and af_state == "success" and not posing


def _pythonpath() -> str:
    # The repository (for demo.*), then whatever the caller had (e.g. a source tree's src/).
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def upstream_link(dg: Any, run_id: str, timeout: float = 120.0) -> str | None:
    """The "Triggered by ..." line the link sensor writes into the run's event log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in dg.log_messages(run_id):
            if message.startswith("Triggered by "):
                return str(message)
        time.sleep(2)
    return None


def screenshots(out: Path, shots: list[tuple[str, str]]) -> list[Path]:
    """Each (name, URL) as a PNG under ``out``, by headless Chromium (scripts/screenshots.sh
    installs Debian's chromium)."""
    import subprocess
    import tempfile

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise RuntimeError("chromium is not installed: run scripts/screenshots.sh")
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, url in shots:
        path = out / f"{name}.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                            "--disable-quic", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", f"--user-data-dir={profile}",
                            "--hide-scrollbars", "--virtual-time-budget=30000",
                            f"--screenshot={path}", "--window-size=1600,1000", url],
                           check=True, timeout=180, capture_output=True)
        saved.append(path)
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="keep the servers up (and .demo/) until Enter is pressed; "
                        "then stop them and remove .demo/")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save headless-Chromium screenshots of the Dagster run the Airflow "
                        "task started and of the asset page in DIR (scripts/screenshots.sh)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    dagster_port = free_port()
    dagster_url = f"http://127.0.0.1:{dagster_port}"
    ok = False
    try:
        step(t0, "starting Airflow 3 (SQLite, LocalExecutor) on 127.0.0.1 - about a minute")
        with start_airflow_server(WORK / "airflow", REPO / "demo" / "airflow_dags",
                                  extra_env={"TRIGRUN_DEMO_DAGSTER_URL": dagster_url,
                                             "PYTHONPATH": _pythonpath()}) as af:
            step(t0, f"Airflow is up at {af.base_url} (user {af.username})")
            step(t0, "starting Dagster (SQLite) on 127.0.0.1")
            with start_dagster_server(
                WORK / "dagster", REPO / "demo" / "workspace.yaml", dagster_port,
                extra_env={"TRIGRUN_DEMO_AIRFLOW_URL": af.base_url,
                           "TRIGRUN_DEMO_AIRFLOW_PASSWORD": af.password,
                           "DAGSTER_WEBSERVER_URL": dagster_url,
                           "PYTHONPATH": _pythonpath()},
                daemon=True,
                # No "join the community" dialog over the pages (and the screenshots).
                dagster_yaml=DAGSTER_YAML + "nux:\n  enabled: false\n",
            ) as dg:
                step(t0, f"Dagster is up at {dg.base_url}")
                first = airflow_to_dagster(af, dg, t0)
                second = dagster_to_airflow(af, dg, t0)
                ok = first and second
                say("\nWhere to look:")
                say(f"  Airflow UI  {af.base_url}/dags/{AIRFLOW_DAG}  and  "
                    f"{af.base_url}/dags/{AIRFLOW_TARGET_DAG}  (user {af.username}, "
                    f"password {af.password})")
                say(f"  Dagster UI  {dg.base_url}/runs  and  "
                    f"{dg.base_url}/assets/trigrun/nightly_warehouse_load")
                say("  Each downstream run names the run that started it: the Dagster run's "
                    "'Launched by' and a 'Triggered by' link in its event log, the Airflow DAG "
                    "run's note. Materialize on the asset page fires the Airflow DAG again.")
                say("\nDownstream runs:")
                for direction, run, state, url in RUNS:
                    say(f"  {direction:<19} {state:<8} {run}\n  {'':<19} {url}")
                if args.screenshots is not None:
                    shots = [("dagster-asset-materialize",
                              f"{dg.base_url}/assets/trigrun/nightly_warehouse_load")]
                    if DAGSTER_RUN_FROM_AIRFLOW:
                        shots.insert(0, ("dagster-run-from-airflow",
                                         f"{dg.base_url}/runs/{DAGSTER_RUN_FROM_AIRFLOW[0]}"))
                    for path in screenshots(args.screenshots, shots):
                        say(f"  screenshot  {path}")
                if args.keep:
                    input("\nServers are up; press Enter to stop them (and remove .demo/). ")
                else:
                    say("\nTo browse the runs in both UIs, keep the servers up: "
                        "scripts/demo.sh --keep")
                step(t0, "stopping every process the demo started")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    say(f"\n{'DEMO OK' if ok else 'DEMO FAILED'}: both downstream runs "
        f"{'ended in success' if ok else 'did not both succeed'} "
        f"({time.monotonic() - t0:.0f}s in all)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
