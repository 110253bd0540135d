"""The README cannot drift either: its jobs files load, its first job is the Airflow 3 form,
and every Python example runs, the first against a fake Airflow 3 REST API on a local port
(tests/docs/test_readme_live.py runs the first job against a real Airflow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import trigrun
from tests.docs._readme import blocks, first_jobs_file, pointed_at
from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer
from trigrun._loader import parse_jobs

PASSWORD = "readme-pw-93c1e7"


def test_every_readme_jobs_file_loads_and_the_first_is_airflow_3() -> None:
    files = [b for b in blocks("yaml") if b.lstrip().startswith(("#", "jobs:"))]
    assert len(files) == 2  # the jobs to copy, and the seed form "also accepted"
    for text in files:
        assert parse_jobs(yaml.safe_load(text), source="README.md")
    first, dbt = parse_jobs(yaml.safe_load(first_jobs_file()))
    assert first.target_name == "airflow"
    assert first.auth is not None
    assert first.auth.type == "airflow_password"
    assert dbt.target_name == "dbt_cloud"
    seed = yaml.safe_load(files[1])["jobs"][0]
    assert "/api/v1/" in seed["request"]["url"]  # the seed, kept verbatim, comes second


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = blocks("python")
    assert "result.raise_for_failure()" in code[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGRUN_SECRET_AIRFLOW_PASSWORD", PASSWORD)
    with LocalServer() as srv:
        fake = FakeAirflow(srv, username="admin", password=PASSWORD, states=["success"])
        (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(pointed_at(first_jobs_file(),
                                                                      srv.url)))
        scope: dict[str, object] = {"__name__": "__readme__"}
        exec(compile(code[0], "README.md#python-1", "exec"), scope)
        for i, block in enumerate(code[1:], start=2):
            exec(compile(block, f"README.md#python-{i}", "exec"), {"__name__": "__readme__"})
    run = scope["run"]
    assert isinstance(run, trigrun.RunResult)
    assert run.state is trigrun.RunState.SUCCESS
    [(dag_id, _)] = list(fake.runs)
    assert dag_id == "nightly_etl"
    assert fake.token_requests == 1
    assert PASSWORD not in capsys.readouterr().out  # the printed log is redacted


def test_the_readme_flow_stops_at_the_fires_cause(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A wrong password: the example stops at result.raise_for_failure() with the cause.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGRUN_SECRET_AIRFLOW_PASSWORD", "wrong")
    with LocalServer() as srv:
        FakeAirflow(srv, username="admin", password=PASSWORD)
        (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(pointed_at(first_jobs_file(),
                                                                      srv.url)))
        with pytest.raises(trigrun.TriggerFailed, match="401") as err:
            exec(compile(blocks("python")[0], "README.md#python-1", "exec"), {})
    assert err.value.result is not None
    assert not err.value.result.ok
