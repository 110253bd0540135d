"""Spec loading: the seed's JSON verbatim, jobs files in every shape, clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

import trigrun
from trigrun._models import AirflowTarget, DagsterTarget, DbtCloudTarget, PrefectTarget

from .seed_jobs import AIRFLOW_DAG, DBT_CLOUD, ML_RETRAIN, SEEDS


def _seed_dicts() -> list[dict[str, Any]]:
    return [json.loads(s) for s in (AIRFLOW_DAG, DBT_CLOUD, ML_RETRAIN)]


@pytest.mark.parametrize(("target", "text"), SEEDS.items())
def test_seed_json_validates_verbatim(target: str, text: str) -> None:
    spec = trigrun.JobSpec.model_validate_json(text)
    assert spec == trigrun.JobSpec.model_validate(json.loads(text))
    assert spec.target_name == target
    assert spec.effective_kind == "cron"
    assert spec.request is not None
    # The secret stays a reference in the spec; nothing resolves it at load time.
    assert spec.request.headers["Authorization"].startswith("secret://")


def test_seed_values_are_kept() -> None:
    airflow, dbt, ml = (trigrun.JobSpec.model_validate_json(s) for s in SEEDS.values())
    assert airflow.schedule is not None
    assert airflow.schedule.cron == "0 1 * * *"
    assert airflow.request is not None
    assert airflow.request.timeout_seconds == 30
    assert airflow.retry_policy.max_attempts == 3
    assert airflow.retry_policy.retry_on_statuses == [500, 502, 503]
    assert airflow.request.body == {"conf": {"source": "production", "target": "warehouse",
                                             "mode": "incremental"}}
    target = airflow.resolved_target()
    assert isinstance(target, AirflowTarget)
    assert (target.dag_id, target.api_version) == ("nightly_etl", "v1")
    assert target.base_url == "https://airflow.yourcompany.com"
    assert target.conf["mode"] == "incremental"
    dbt_target = dbt.resolved_target()
    assert isinstance(dbt_target, DbtCloudTarget)
    assert (dbt_target.account_id, dbt_target.job_id) == ("ACCOUNT_ID", "JOB_ID")
    assert dbt.retry_policy.retry_on_statuses == [429, 500, 502, 503, 504]  # the default
    assert ml.waits is False  # a plain webhook has no run to wait on
    assert dbt.waits is True
    assert airflow.waits is True


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    p = tmp_path / name
    if name.endswith(".json"):
        p.write_text(json.dumps(data), encoding="utf-8")
    else:
        p.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return p


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
@pytest.mark.parametrize("shape", ["one", "list", "jobs"])
def test_load_jobs_every_shape(tmp_path: Path, suffix: str, shape: str) -> None:
    jobs = _seed_dicts()
    data: Any = {"one": jobs[0], "list": jobs, "jobs": {"jobs": jobs}}[shape]
    specs = trigrun.load_jobs(_write(tmp_path, "jobs" + suffix, data))
    expected = jobs[:1] if shape == "one" else jobs
    assert [s.name for s in specs] == [j["name"] for j in expected]
    assert specs == [trigrun.JobSpec.model_validate(j) for j in expected]


def test_load_jobs_reads_the_seed_text_as_yaml(tmp_path: Path) -> None:
    # JSON is YAML: the seed's text pasted into jobs.yaml works too.
    p = tmp_path / "jobs.yaml"
    p.write_text(f"[{AIRFLOW_DAG}, {DBT_CLOUD}, {ML_RETRAIN}]", encoding="utf-8")
    assert [s.target_name for s in trigrun.load_jobs(p)] == ["airflow", "dbt_cloud", "webhook"]


@pytest.mark.parametrize(("url", "target", "cls"), [
    ("https://af.example.com/api/v1/dags/etl/dagRuns", "airflow", AirflowTarget),
    ("http://localhost:8080/api/v2/dags/etl/dagRuns", "airflow", AirflowTarget),
    ("https://cloud.getdbt.com/api/v2/accounts/12/jobs/34/run/", "dbt_cloud", DbtCloudTarget),
    ("http://127.0.0.1:4200/api/deployments/0b5e-11/create_flow_run", "prefect", PrefectTarget),
    ("http://127.0.0.1:3000/graphql", "dagster", DagsterTarget),
    ("https://ml.example.com/api/train", "webhook", None),
    ("https://example.com/api/v2/dags/etl/dagRuns/extra", "webhook", None),
])
def test_auto_target_detection(url: str, target: str, cls: type | None) -> None:
    body: Any = {"query": "mutation { launchRun }"} if target == "dagster" else {"x": 1}
    spec = trigrun.JobSpec.model_validate(
        {"name": "j", "request": {"url": url, "body": body}})
    assert spec.target_name == target
    resolved = spec.resolved_target()
    assert resolved.type == target
    if cls is not None:
        assert isinstance(resolved, cls)


def test_auto_detection_reads_ids_from_the_url() -> None:
    spec = trigrun.JobSpec.model_validate({"name": "j", "request": {
        "url": "http://127.0.0.1:4200/api/deployments/abc-123/create_flow_run?x=1"}})
    t = spec.resolved_target()
    assert isinstance(t, PrefectTarget)
    assert (t.base_url, t.deployment_id) == ("http://127.0.0.1:4200/api", "abc-123")


def test_named_target_must_match_the_url() -> None:
    with pytest.raises(ValidationError, match=r"does not match request\.url"):
        trigrun.JobSpec.model_validate({"name": "j", "target": "airflow",
                                        "request": {"url": "https://ml.example.com/train"}})


def test_duplicate_names_rejected(tmp_path: Path) -> None:
    jobs = _seed_dicts()
    jobs.append(dict(jobs[0]))
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.load_jobs(_write(tmp_path, "dup.yaml", {"jobs": jobs}))
    assert len(err.value.problems) == 1
    msg = err.value.problems[0]
    assert "dup.yaml" in msg
    assert "Nightly ETL - production to warehouse" in msg
    assert "field name" in msg
    assert "duplicate of job #1" in msg
    assert "unique" in msg


BAD_JOBS = [
    {"name": "typo", "schedule": {"cron": "0 1 * * *"},
     "request": {"url": "https://x.example/hook", "methd": "POST"}},
    {"name": "bad cron", "schedule": {"cron": "61 1 * * *"},
     "request": {"url": "https://x.example/hook"}},
    {"name": "retries 404", "schedule": {"cron": "0 1 * * *"},
     "request": {"url": "https://x.example/hook"},
     "retry_policy": {"retry_on_statuses": [503, 404]}},
    {"name": "no dag", "schedule": {"cron": "0 1 * * *"},
     "target": {"type": "airflow", "base_url": "http://af:8080"}},
    {"name": "negative timeout", "schedule": {"cron": "0 1 * * *"},
     "request": {"url": "https://x.example/hook", "timeout_seconds": -1}},
    {"name": "cron without schedule", "kind": "cron",
     "request": {"url": "https://x.example/hook"}},
    {"name": "ftp", "request": {"url": "ftp://x.example/hook"}},
    {"name": "bad target", "request": {"url": "https://x.example/hook"},
     "target": {"type": "dagsterz"}},
]
# job name -> (field named in the message, words that say how to fix it)
EXPECTED = {
    "typo": ("request.methd", "check its spelling"),
    "bad cron": ("schedule.cron", "e.g. '0 1 * * *'"),
    "retries 404": ("retry_policy.retry_on_statuses", "Remove 404"),
    "no dag": ("target.dag_id", "add the field"),
    "negative timeout": ("request.timeout_seconds", "use a larger number"),
    "cron without schedule": ("schedule.cron", 'e.g. {"schedule"'),
    "ftp": ("request.url", "e.g. 'https://host/path'"),
    "bad target": ("target", "allowed `type` values"),
}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_every_problem_reported_at_once(tmp_path: Path, suffix: str) -> None:
    good = _seed_dicts()
    path = _write(tmp_path, "jobs" + suffix, {"jobs": [good[0], *BAD_JOBS, good[2]]})
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.load_jobs(path)
    exc = err.value
    assert isinstance(exc, ValueError)
    assert isinstance(exc, trigrun.TrigRunError)
    assert len(exc.problems) == len(BAD_JOBS)  # one clear line each, no union noise
    for job, (field, fix) in EXPECTED.items():
        lines = [p for p in exc.problems if f"job {job!r}" in p]
        assert len(lines) == 1, (job, exc.problems)
        line = lines[0]
        assert line.startswith(f"{path}: "), line
        assert f"field {field}:" in line, line
        assert fix in line, line
        assert line in str(exc)


def test_invalid_job_without_name_is_numbered() -> None:
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.parse_jobs([_seed_dicts()[0], {"request": {"url": "https://x/y"}}],
                           source="jobs.yaml")
    assert err.value.problems == [
        "jobs.yaml: job '#2', field name: Field required (add the field)"]


def test_spec_error_is_value_error_and_wraps_pydantic() -> None:
    with pytest.raises(ValueError, match=r"job 'x', field request\.url") as err:
        trigrun.parse_jobs({"name": "x", "request": {"url": "nope"}})
    assert isinstance(err.value, trigrun.SpecError)
    # The pydantic error is replaced, not chained (its text names no job or file).
    exc = err.value
    assert exc.__cause__ is None
    assert (exc.__context__ is None or exc.__suppress_context__)


@pytest.mark.parametrize(("content", "words"), [
    ("", "empty"),
    ("jobs: [", "not valid YAML"),
    ("42", "expected a job"),
    ('{"jobs": [], "extra": 1}', "unexpected top-level keys"),
])
def test_bad_files(tmp_path: Path, content: str, words: str) -> None:
    p = tmp_path / "jobs.yaml"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(trigrun.SpecError, match=words) as err:
        trigrun.load_jobs(p)
    assert str(p) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(trigrun.SpecError, match="cannot read the jobs file"):
        trigrun.load_jobs(tmp_path / "nope.yaml")


def test_target_given_as_unknown_name() -> None:
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.parse_jobs({"name": "x", "target": "airflw",
                            "request": {"url": "https://x.example/hook"}})
    assert len(err.value.problems) == 1
    assert "field target:" in err.value.problems[0]
    assert "'airflow'" in err.value.problems[0]


def test_gc_paused_restores_the_collector_as_it_found_it() -> None:
    import gc

    from trigrun._loader import gc_paused

    assert gc.isenabled()
    seen: list[bool] = []

    def fail() -> None:
        with gc_paused():
            seen.append(gc.isenabled())
            raise RuntimeError("a bad spec")

    with pytest.raises(RuntimeError):
        fail()
    assert seen == [False]
    assert gc.isenabled()  # re-enabled after an error too
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()

    @gc_paused()
    def build() -> bool:
        return gc.isenabled()

    assert build() is False
    assert gc.isenabled()
