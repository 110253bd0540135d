"""Secret-leak sweep: every example DAG and every example Dagster definition, run with canary
secret values, leaves no trace of them anywhere the orchestrators keep things.

The examples are copied to a temporary folder with their hosts (airflow.example.com,
cloud.getdbt.com, bi.example.com, hooks.slack.com, ...) pointed at local fakes on 127.0.0.1 -
nothing else in them changes - and run for real: Airflow DAGs with ``dag.test()`` (deferrable
tasks go through ``TrigRunTrigger``), Dagster jobs with ``execute_in_process`` and the
component's completion sensor ticked until it reports. The fakes echo credentials back in
their replies. Then task logs, XCom, rendered fields, trigger kwargs, Dagster event logs,
metadata and sensor cursors, and the SQLite databases are searched for every canary value
and every JWT the fake Airflow issued.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.fakes import FakeAirflow, FakeDagster, FakeDbtCloud
from tests.helpers.faults import FaultServer
from tests.helpers.httpserver import Recorded, Reply

from ._paths import airflow_files, airflow_records, register_dag
from ._report import ROOT, Report
from ._secrets import Evidence, hits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CANARIES = {name: f"canary-{name}-{secrets.token_hex(10)}" for name in (
    "airflow-password", "dbt-token", "bi-key", "slack-path", "metabase-key", "slack-token")}
EXAMPLE_HOSTS = ("airflow.example.com", "cloud.getdbt.com", "bi.example.com",
                 "hooks.slack.com", "metabase.example.com", "slack.com", "etl.example.com",
                 "reports.example.com")


def _echo(req: Recorded) -> Reply:
    """A careless API: quotes the credentials and the path it was called on."""
    return Reply(200, json={"ok": True, "run_id": "hook-1", "you_sent": {
        "authorization": req.headers.get("authorization"),
        "x-api-key": req.headers.get("x-api-key"), "target": req.target}})


@dataclass
class Fakes:
    airflow: FakeAirflow
    dbt: FakeDbtCloud
    dagster: FakeDagster
    hooks: FaultServer
    tokens: list[str] = field(default_factory=list)  # JWTs the fake Airflow issued

    def hosts(self) -> dict[str, str]:
        return {
            "https://airflow.example.com": self.airflow.base_url,
            "https://cloud.getdbt.com": self.dbt.base_url,
            "https://etl.example.com": self.dagster.base_url,
            **{f"https://{h}": self.hooks.url for h in (
                "bi.example.com", "hooks.slack.com", "metabase.example.com", "slack.com",
                "reports.example.com")},
        }

    def values(self) -> list[str]:
        return [*CANARIES.values(), *self.tokens]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    servers = [FaultServer().start() for _ in range(4)]
    af_srv, dbt_srv, dg_srv, hooks = servers
    try:
        # Runs that are over at the first status check: the sweep is about secrets, not waits.
        airflow = FakeAirflow(af_srv, username="trigrun", password=CANARIES["airflow-password"],
                              states=["success"])
        tokens: list[str] = []
        issue = airflow._token

        def token(req: Recorded) -> Reply:
            reply = issue(req)
            if isinstance(reply.json, dict) and reply.json.get("access_token"):
                tokens.append(reply.json["access_token"])
            return reply

        af_srv.on("POST", "/auth/token", token)
        dbt = FakeDbtCloud(dbt_srv, account_id=12345, job_id=67890, statuses=[10])
        dagster = FakeDagster(dg_srv, statuses=["SUCCESS"])
        for path in ("/api/cache/refresh", "/services/{hook}", "/services/{a}/{b}/{c}",
                     "/api/chat.postMessage", "/refresh"):
            hooks.on("POST", path, _echo)
        yield Fakes(airflow, dbt, dagster, hooks, tokens)
    finally:
        for srv in servers:
            srv.stop()


def copy_rewritten(src: Path, dst: Path, fakes: Fakes, rename: dict[str, str] | None = None) -> Path:
    """``src`` copied to ``dst`` with the example hosts replaced by the fakes' URLs (and dbt
    Cloud's default base URL written out) and poll intervals of 1 s; nothing else changes."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    for old, new in (rename or {}).items():  # folders too (example_dagster's root module)
        for path in sorted(dst.rglob(old), reverse=True):
            if path.is_dir():
                path.rename(path.with_name(new))
    for path in dst.rglob("*"):
        if path.suffix not in (".py", ".yaml", ".yml", ".toml"):
            continue
        text = path.read_text()
        for old, new in fakes.hosts().items():
            text = text.replace(old, new)
        text = re.sub(r"type: dbt_cloud,(?! base_url)",
                      f"type: dbt_cloud, base_url: {fakes.dbt.base_url},", text)
        # A wait's first status check may come one poll interval late (a listing read once per
        # interval, docs/batching.md): at the examples' 30-60 s the sweep took five minutes.
        text = re.sub(r"(poll_interval(?:_seconds)?)(\s*[=:]\s*)\d+", r"\g<1>\g<2>1", text)
        for old, new in (rename or {}).items():
            text = text.replace(old, new)
        path.write_text(text)
        left = [h for h in EXAMPLE_HOSTS if h in text]
        assert not left, f"{path}: {left} not pointed at a fake"
    return dst


def _sent_secrets(fakes: Fakes, *hook_secrets: str) -> None:
    """Control: the secrets really went out, to the right places."""
    assert fakes.tokens, "the fake Airflow issued no token: the password was not sent"
    dbt_auth = {r.headers.get("authorization") for r in fakes.dbt.server.requests}
    assert dbt_auth & {f"Bearer {CANARIES['dbt-token']}", f"Token {CANARIES['dbt-token']}"}
    hook_raw = "\n".join(r.raw() for r in fakes.hooks.requests)
    for name in hook_secrets:
        assert CANARIES[name] in hook_raw, name


# -- Airflow ----------------------------------------------------------------------------------


def test_example_dags_leak_nothing(fakes: Fakes, airflow_ready: Path, report: Report,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capfd: pytest.CaptureFixture[str],
                                   request: pytest.FixtureRequest) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_AIRFLOW", json.dumps({
        "conn_type": "trigrun", "host": fakes.airflow.base_url, "login": "trigrun",
        "password": CANARIES["airflow-password"]}))
    monkeypatch.setenv("AIRFLOW_CONN_DBT_CLOUD", json.dumps({
        "conn_type": "trigrun", "host": fakes.dbt.base_url, "password": CANARIES["dbt-token"]}))
    monkeypatch.setenv("AIRFLOW_VAR_BI_API_KEY", CANARIES["bi-key"])
    monkeypatch.setenv("AIRFLOW_VAR_SLACK_WEBHOOK_PATH", CANARIES["slack-path"])
    # dag.test() runs triggers inline: no scheduler race to settle (see triggers.py).
    monkeypatch.setattr("trigrun.airflow.operators.SETTLE_SECONDS", 0.0)
    monkeypatch.setattr("trigrun.airflow.sensors.SETTLE_SECONDS", 0.0)

    folder = copy_rewritten(ROOT / "example_dags", tmp_path / "example_dags", fakes)
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    examples = sorted(bag.dags)
    assert len(examples) >= 7, examples
    evidence: list[Evidence] = []
    runs: dict[str, str] = {}
    for dag_id in examples:
        dag = bag.dags[dag_id]
        for task in dag.tasks:
            task.retries = 0  # a failure must fail the sweep now, not after a retry delay
        register_dag(dag)
        capfd.readouterr()
        dag_run = dag.test()
        out, err = capfd.readouterr()
        rec = airflow_records(dag_run)
        runs[dag_id] = f"{dag_run.state}, {len(dag.tasks)} task(s)"
        evidence += [(f"{dag_id}: task logs", out + err),
                     (f"{dag_id}: XCom", json.dumps({str(k): v for k, v in rec["xcom"].items()},
                                                     default=str)),
                     (f"{dag_id}: rendered fields", json.dumps(rec["rendered"], default=str))]
        assert dag_run.state == "success", (dag_id, out[-3000:])
        assert set(rec["states"].values()) == {"success"}, rec["states"]
    evidence.append(("trigger kwargs (Trigger table)", json.dumps(rec["triggers"], default=str)))
    evidence += airflow_files(airflow_ready)
    found = hits(evidence, fakes.values())
    deferred = [t for t in rec["triggers"]
                if str((t["kwargs"].get("spec") or {}).get("name", "")).startswith(
                    tuple(examples))]
    for dag_id in examples:
        report.add(request.node.nodeid, "leaks", (0, examples.index(dag_id)), [
            f"`example_dags`: {dag_id}", runs[dag_id],
            "task logs, XCom, rendered fields, trigger kwargs, Airflow SQLite and log files",
            str(sum(dag_id in f for f in found))], key=dag_id)

    _sent_secrets(fakes, "bi-key", "slack-path")
    # Controls: the places searched hold what the fakes echoed back (redacted), in XCom and in
    # the database, so a clean search means something.
    assert any("XCom" in f for f in hits(evidence, ["you_sent"]))
    assert any("SQLite" in f for f in hits(evidence, ["you_sent"]))
    assert deferred, "no deferrable example stored a trigger: its kwargs were not searched"
    assert found == []


# -- Dagster ----------------------------------------------------------------------------------


def _dagster_copy(fakes: Fakes, tmp_path: Path) -> tuple[str, Path]:
    package = f"relsweep_{secrets.token_hex(4)}"
    root = tmp_path / "dagster"
    root.mkdir()
    copy_rewritten(ROOT / "example_dagster", root / package, fakes,
                   rename={"example_dagster": package})
    return package, root


def test_example_dagster_definitions_leak_nothing(
        fakes: Fakes, report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> None:
    import dagster as dg
    from example_dagster.definitions import defs as original

    from tests.dagster.helpers import run_logs

    for var, name in (("TRIGRUN_EXAMPLE_AIRFLOW_PASSWORD", "airflow-password"),
                      ("TRIGRUN_EXAMPLE_DBT_CLOUD_TOKEN", "dbt-token"),
                      ("TRIGRUN_EXAMPLE_METABASE_KEY", "metabase-key"),
                      ("TRIGRUN_EXAMPLE_SLACK_TOKEN", "slack-token")):
        monkeypatch.setenv(var, CANARIES[name])
    package, root = _dagster_copy(fakes, tmp_path)
    monkeypatch.syspath_prepend(str(root))
    try:
        module = __import__(f"{package}.definitions", fromlist=["defs"])
        defs: dg.Definitions = module.defs
        repo = defs.get_repository_def()
        jobs = sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__"))
        # Every job of the real example is swept (an example added later must be swept too).
        assert jobs == sorted(j.name for j in original.get_repository_def().get_all_jobs()
                              if not j.name.startswith("__"))
        evidence: list[Evidence] = []
        outcomes: dict[str, str] = {}
        with dg.instance_for_test() as instance:
            for name in jobs:
                job = defs.get_job_def(name)
                config = {}
                if name == "asteroid_report_job":  # the hand-written op of the lesson
                    config = {"ops": {"refresh_asteroid_report": {"config": {
                        "scheduled_time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                        time.gmtime())}}}}
                failure_report = name.endswith("__downstream_failed")
                if failure_report:  # the completion sensor's report of a failed downstream run
                    config = {"ops": {f"{name}__report": {"config": {
                        "job": "nightly", "run_id": "r-1", "state": "failed",
                        "message": "the downstream run failed"}}}}
                capfd.readouterr()
                result = job.execute_in_process(instance=instance, run_config=config,
                                                raise_on_error=False)
                out, err = capfd.readouterr()
                outcomes[name] = "success" if result.success else "failure"
                evidence += [(f"{name}: stdout/stderr", out + err),
                             (f"{name}: event log", run_logs(instance, result.run_id))]
                # A report run fails on purpose: that is how a failed downstream run shows.
                assert result.success is not failure_report, (name, out[-3000:])
            # The component waits in its completion sensor: tick it until it has reported.
            sensor = repo.get_sensor_def("trigrun_nightly_completion_sensor")
            cursor: str | None = None
            reported: list[Any] = []
            for _ in range(10):
                ctx = dg.build_sensor_context(instance=instance, cursor=cursor,
                                              resources={"trigrun_nightly":
                                                         defs.resources["trigrun_nightly"]})
                data = sensor.evaluate_tick(ctx)
                cursor = data.cursor
                reported += list(data.asset_events)
                evidence.append(("sensor tick", repr(data)))
                if reported and not json.loads(cursor or "{}").get("pending"):
                    break
            root_dir = Path(instance.root_directory)
            evidence.append(("Dagster instance storage (SQLite, compute logs)", b"\n".join(
                p.read_bytes() for p in sorted(root_dir.rglob("*")) if p.is_file())))
    finally:
        for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[mod]
    found = hits(evidence, fakes.values())
    for i, name in enumerate(jobs):
        report.add(request.node.nodeid, "leaks", (1, i), [
            f"`example_dagster`: job {name}", outcomes[name],
            "stdout/stderr, event log (metadata, asset events), instance SQLite and logs",
            str(sum(name in f for f in found))], key=name)
    report.add(request.node.nodeid, "leaks", (1, len(jobs)), [
        "`example_dagster`: trigrun_nightly_completion_sensor",
        f"{len(reported)} run(s) reported", "tick results, cursor, instance SQLite",
        str(sum("sensor" in f for f in found))], key="sensor")

    _sent_secrets(fakes, "metabase-key", "slack-token")
    assert any("storage" in f for f in hits(evidence, ["you_sent"]))  # control, as above
    assert reported, "the completion sensor never reported the component's run"
    assert found == []
