"""One job spec through each path trigrun offers: the sync and async engines, Airflow
(``TrigRunOperator``, deferrable, run with ``dag.test()``) and Dagster (``build_trigrun_job``,
``execute_in_process``). Each path reports what it observed in one shape, ``Observed``, plus
every place a secret could have leaked to (``evidence``), read back from where the
orchestrator keeps it: logs, XCom, rendered fields, trigger rows, metadata, event logs, the
SQLite databases.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.drive import Driver
from trigrun import JobSpec, TrigRunError

from ._secrets import DAGSTER_SECRETS_ENV, SECRETS, Evidence

HERE = Path(__file__).resolve().parent
PATHS = {"sync": "engine (sync)", "async": "engine (async)", "airflow": "Airflow",
         "dagster": "Dagster"}
# What an orchestrator adds to the engine's time bound: its own run bookkeeping (dag.test(),
# execute_in_process, their SQLite writes) on a loaded machine. The engine paths keep the
# scenario's own bound.
ORCHESTRATOR_SECONDS = 10.0
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


@dataclass
class Observed:
    trigger_ok: bool
    status: int | None  # the HTTP status the result records
    adopted: bool
    state: str | None  # how the wait ended (RunState value); None when nothing was waited on
    attempts: list[str]  # one label per attempt: "503", "reset", "timeout", "refused", "TLS"
    message: str  # the error, or the wait's message
    seconds: float
    evidence: list[Evidence] = field(default_factory=list)


def label(status: int | None, error: str | None) -> str:
    """A short, transport-independent name for one attempt's outcome."""
    if status is not None:
        return str(status)
    e = (error or "").lower()
    if m := re.match(r"proxy error: (\d{3})\b", e):  # the proxy's own answer to CONNECT
        return f"proxy {m.group(1)}"
    # aiohttp names the connection's TLS setting in every connect error ("ssl:default").
    e = e.replace("ssl:default", "").replace("ssl:none", "")
    for words, name in ((("certificate", "ssl"), "TLS"), (("refused", "connect call failed"), "refused"),
                        (("timed out", "timeout"), "timeout"),
                        (("reset", "closed the connection", "disconnect", "remoteprotocol",
                          "readerror"), "reset")):
        if any(w in e for w in words):
            return name
    return "error"


def state_from_message(message: str) -> str:
    """A wait's end state from the engine's message (as the orchestrators report it)."""
    if m := re.search(r"ended (\w+)", message):
        return m.group(1)
    if "deadline" in message:
        return "timeout"
    return "unknown"


# -- the engines -------------------------------------------------------------------------------


def run_engine(kind: str, spec_data: dict[str, Any], capfd: pytest.CaptureFixture[str],
               caplog: pytest.LogCaptureFixture) -> Observed:
    spec = JobSpec.model_validate(spec_data)
    events: list[Any] = []
    t0 = time.monotonic()
    with Driver(kind, secrets=dict(SECRETS), on_event=events.append) as driver:
        result = driver.fire(spec)
        run = driver.wait(result) if result.ok and result.run_id else None
    seconds = time.monotonic() - t0
    raised = []
    for outcome in (result, run):
        try:
            if outcome is not None:
                outcome.raise_for_failure()
        except TrigRunError as exc:
            raised.append(f"{type(exc).__name__}: {exc!r} {exc}")
    out, err = capfd.readouterr()
    evidence: list[Evidence] = [
        ("TriggerResult.to_log()", json.dumps(result.to_log())),
        ("repr(TriggerResult)", repr(result)),
        ("TriggerResult.spec", result.spec.model_dump_json() if result.spec else ""),
        ("RunResult.to_log()", json.dumps(run.to_log()) if run else ""),
        ("repr(RunResult)", repr(run)),
        ("exceptions", "\n".join(raised)),
        ("events", "\n".join(f"{e!r}" for e in events)),
        ("log records", caplog.text),
        ("stdout/stderr", out + err),
    ]
    return Observed(
        trigger_ok=result.ok, status=result.status_code, adopted=result.adopted,
        state=run.state.value if run else None,
        attempts=[label(a.status_code, a.error) for a in result.attempts],
        message=(result.error or "") if not result.ok else (run.message if run else ""),
        seconds=seconds, evidence=evidence)


# -- Airflow -------------------------------------------------------------------------------------


def register_dag(dag: Any) -> None:
    """Serialize a DAG built in the test into the in-process metadata DB (``dag.test()`` needs
    it there, and only finds DAGs of the configured DAGs folder by itself)."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    bag = DagBag(dag_folder=str(HERE), collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def airflow_records(dag_run: Any) -> dict[str, Any]:
    """XCom, rendered fields, the task instance and every trigger row of one DAG run."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcom = {(row.task_id, row.key): row.value for row in session.query(XComModel).filter_by(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id)}
        tis = session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id,
                                                    run_id=dag_run.run_id).all()
        rendered = [RenderedTaskInstanceFields.get_templated_fields(ti, session=session)
                    for ti in tis]
        triggers = []
        for row in session.query(Trigger).all():
            try:
                kwargs = Trigger._decrypt_kwargs(row.encrypted_kwargs)
            except Exception as exc:  # stored kwargs that do not decode are evidence too
                kwargs = {"undecodable": repr(exc)}
            triggers.append({"classpath": row.classpath, "kwargs": kwargs,
                             "stored": row.encrypted_kwargs})
        states = {ti.task_id: ti.state for ti in tis}
        next_kwargs = [ti.next_kwargs for ti in tis]
    return {"xcom": xcom, "rendered": rendered, "triggers": triggers, "states": states,
            "next_kwargs": next_kwargs}


def airflow_files(home: Path) -> list[Evidence]:
    """The in-process Airflow's SQLite database (and journal) and log files, as bytes."""
    out: list[Evidence] = []
    for p in sorted(home.glob("airflow.db*")):
        out.append((f"Airflow SQLite {p.name}", p.read_bytes()))
    logs = home / "logs"
    if logs.exists():
        for p in sorted(logs.rglob("*")):
            if p.is_file():
                out.append((f"Airflow log {p.relative_to(home)}", p.read_bytes()))
    return out


_EXC = re.compile(r"trigrun\._exceptions\.(\w+): (.+)")
_ATTEMPT = re.compile(r"attempt (\d+): (.+?) \(\d+ ms\)")


def run_airflow(spec_data: dict[str, Any], dag_id: str, home: Path,
                capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Observed:
    from airflow.sdk import DAG

    from trigrun.airflow import TrigRunOperator

    # dag.test() runs the trigger inline: no scheduler race to settle (see triggers.py).
    monkeypatch.setattr("trigrun.airflow.operators.SETTLE_SECONDS", 0.0)
    with DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False,
             tags=["trigrun-reliability"]) as dag:
        TrigRunOperator(task_id="trigger", spec=spec_data, deferrable=True,
                        poll_interval=spec_data.get("wait", {}).get("poll_interval_seconds", 0.05),
                        timeout=30, retries=0)
    register_dag(dag)
    capfd.readouterr()
    t0 = time.monotonic()
    dag_run = dag.test()
    seconds = time.monotonic() - t0
    out, err = capfd.readouterr()
    rec = airflow_records(dag_run)
    xcom = {key: value for (_task, key), value in rec["xcom"].items()}
    fire = xcom.get("return_value") or xcom.get("trigger_log")
    raised = _EXC.findall(out + err)
    message = raised[-1][1] if raised else ""
    if fire:
        attempts = [label(a["status_code"], a["error"]) for a in fire["attempts"]]
        trigger_ok, status, adopted = bool(fire["ok"]), fire["status"], bool(fire["adopted"])
    else:
        seen: dict[str, str] = {}
        for number, what in _ATTEMPT.findall(out + err):
            code = re.fullmatch(r"HTTP (\d{3})", what)
            seen.setdefault(number, code.group(1) if code else label(None, what))
        attempts = list(seen.values())
        trigger_ok, adopted = False, False
        found = re.search(r"HTTP (\d{3})", message)
        status = int(found.group(1)) if found else None
    returned = xcom.get("return_value")
    if returned and returned.get("wait"):
        state, message = returned["wait"].get("state"), returned["wait"].get("message", "")
    elif trigger_ok:
        state = state_from_message(message)
    else:
        state = None
    files = airflow_files(home)
    evidence: list[Evidence] = [
        ("task log (stdout/stderr)", out + err),
        ("XCom", json.dumps({k: v for k, v in xcom.items()}, default=str)),
        ("rendered template fields", json.dumps(rec["rendered"], default=str)),
        ("trigger kwargs (Trigger table)", json.dumps(rec["triggers"], default=str)),
        ("task next_kwargs", json.dumps(rec["next_kwargs"], default=str)),
        *files,
    ]
    if xcom.get("trigger_log"):
        # Controls: the places searched really hold this run's data, so a clean search means
        # something. The task deferred: its trigger row is stored, with references only.
        mine = [t for t in rec["triggers"]
                if (t["kwargs"].get("spec") or {}).get("name") == spec_data["name"]]
        assert mine, "no trigger row stored for this task"
        assert "secret://" in json.dumps(mine, default=str)
        db = b"".join(content for where, content in files
                      if where.startswith("Airflow SQLite") and isinstance(content, bytes))
        assert spec_data["name"].encode() in db, "the SQLite bytes do not hold this run"
    if dag_run.state == "success":
        assert trigger_ok, (dag_run.state, fire, message)
        assert state == "success", (dag_run.state, fire, message)
    return Observed(trigger_ok=trigger_ok, status=status, adopted=adopted, state=state,
                    attempts=attempts, message=message, seconds=seconds, evidence=evidence)


# -- Dagster -------------------------------------------------------------------------------------


def run_dagster(spec_data: dict[str, Any], capfd: pytest.CaptureFixture[str]) -> Observed:
    import dagster as dg

    from tests.dagster.helpers import failure_metadata, output_metadata, run_logs
    from trigrun.dagster import TrigRunResource, build_trigrun_job, op_name_for

    job = build_trigrun_job(spec_data)
    resource = TrigRunResource(
        secrets={name: dg.EnvVar(var) for name, var in DAGSTER_SECRETS_ENV.items()},
        env_secrets_prefix="")
    with dg.instance_for_test() as instance:
        capfd.readouterr()
        t0 = time.monotonic()
        result = job.execute_in_process(instance=instance, resources={"trigrun": resource},
                                        raise_on_error=False)
        seconds = time.monotonic() - t0
        out, err = capfd.readouterr()
        if result.success:
            raw, description = output_metadata(result), ""
        else:
            description, raw = failure_metadata(result)
        md = {k: getattr(v, "value", v) for k, v in raw.items()}
        root = Path(instance.root_directory)
        stored = b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())
        assert result.run_id.encode() in stored, "control: the instance storage holds the run"
        evidence: list[Evidence] = [
            ("Dagster stdout/stderr", out + err),
            ("Dagster event log", run_logs(instance, result.run_id)),
            ("Dagster metadata", json.dumps(md, default=str)),
            ("Dagster op output", json.dumps(result.output_for_node(op_name_for(job.name))
                                             if result.success else None, default=str)),
            ("Dagster instance storage (SQLite, logs)", stored),
        ]
    state = md.get("state")
    trigger_ok = bool(md.get("ok"))
    return Observed(
        trigger_ok=trigger_ok, status=md.get("status_code"), adopted=bool(md.get("adopted")),
        state=state if trigger_ok and state not in ("trigger_failed", "skipped") else None,
        attempts=[label(a["status_code"], a["error"]) for a in md.get("attempt_log", [])],
        message=description or str(md.get("message", "")), seconds=seconds, evidence=evidence)
