"""The ``trigrun`` connection type, ``secret://`` resolution from Airflow, provider metadata.

Connections and variables come from Airflow's real environment-variable secrets backend
(``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``), looked up through the Task SDK, sync and async.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers.airflow_versions import needs_airflow
from trigrun import SpecError

CONN = {"conn_type": "trigrun", "host": "https://airflow.example.com", "login": "robot",
        "password": "conn-password-value",
        "extra": json.dumps({"headers": {"X-Api-Key": "header-key-value"}})}


@pytest.fixture
def env_conn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PROD", json.dumps(CONN))
    monkeypatch.setenv("AIRFLOW_CONN_TOKEN_ONLY", json.dumps(
        {"conn_type": "trigrun", "host": "api.example.com", "port": 8443,
         "password": "token-value"}))
    monkeypatch.setenv("AIRFLOW_CONN_LOGIN", json.dumps({**CONN, "extra": None}))
    monkeypatch.setenv("AIRFLOW_VAR_API_KEY", "variable-value")


# -- secret references ------------------------------------------------------------------------

def test_reference_grammar() -> None:
    from trigrun.airflow.secrets import parse_reference

    assert parse_reference("conn/prod/password") == ("conn", "prod", ["password"])
    assert parse_reference("conn/prod") == ("conn", "prod", ["password"])
    assert parse_reference("conn/prod/extra/headers/X-Api-Key") == (
        "conn", "prod", ["extra", "headers", "X-Api-Key"])
    assert parse_reference("var/api_key") == ("var", "api_key", [])
    assert parse_reference("airflow-api-key") == ("any", "airflow-api-key", [])
    with pytest.raises(ValueError, match="not a connection field"):
        parse_reference("conn/prod/secret")


@pytest.mark.usefixtures("env_conn")
def test_sync_and_async_resolution_from_airflow() -> None:
    from trigrun.airflow import AirflowSecrets

    resolver = AirflowSecrets()
    cases = {"conn/prod/password": "conn-password-value", "conn/prod/login": "robot",
             "conn/prod/extra/headers/X-Api-Key": "header-key-value",
             "var/api_key": "variable-value", "prod": "conn-password-value",
             "api_key": "variable-value", "missing": None, "conn/missing/password": None}

    async def all_async() -> dict[str, Any]:
        return {name: await resolver.aresolve(name) for name in cases}

    assert {name: resolver(name) for name in cases} == cases
    assert asyncio.run(all_async()) == cases


@pytest.mark.usefixtures("env_conn")
def test_resolved_values_are_registered_with_airflows_masker() -> None:
    from tests.helpers.airflow_versions import redact
    from trigrun.airflow import AirflowSecrets

    AirflowSecrets()("var/api_key")
    assert "variable-value" not in str(redact("the key is variable-value"))


@pytest.mark.usefixtures("env_conn")
def test_worker_engine_resolves_airflow_then_trigrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers.httpserver import LocalServer, Reply
    from trigrun import JobSpec
    from trigrun.airflow.hooks import sync_engine

    monkeypatch.setenv("TRIGRUN_SECRET_ONLY_IN_ENV", "env-value")
    with LocalServer() as srv:
        srv.on("POST", "/hook", Reply(json={"ok": True}))
        spec = JobSpec.model_validate({"name": "j", "request": {
            "url": f"{srv.url}/hook", "headers": {"X-From-Var": "secret://api_key",
                                                   "X-From-Env": "secret://only-in-env"}}})
        with sync_engine() as engine:
            result = engine.fire(spec)
        assert result.ok
        (sent,) = srv.requests_to("/hook")
    assert sent.headers["x-from-var"] == "variable-value"
    assert sent.headers["x-from-env"] == "env-value"
    assert "variable-value" not in json.dumps(result.to_log())


# -- the connection applied to specs ----------------------------------------------------------

@pytest.mark.usefixtures("env_conn")
def test_connection_fills_base_url_auth_and_headers_as_references() -> None:
    from trigrun.airflow import TrigRunHook

    short = TrigRunHook(trigrun_conn_id="login").apply(
        {"name": "j", "target": {"type": "airflow", "dag_id": "etl"}})
    assert short.target.base_url == "https://airflow.example.com"
    assert short.auth.model_dump() == {"type": "airflow_password", "username": "robot",
                                       "password": "secret://conn/login/password",
                                       "token_url": None}
    hook = TrigRunHook(trigrun_conn_id="prod")
    with pytest.raises(SpecError, match="short-form target sends no custom headers"):
        TrigRunHook(trigrun_conn_id="prod").apply(
            {"name": "j", "target": {"type": "dbt_cloud", "account_id": 1, "job_id": 2}}
            | {"auth": None})
    raw = hook.apply({"name": "j", "request": {"url": "/hooks/run", "headers": {"x-a": "1"}}})
    assert raw.request.url == "https://airflow.example.com/hooks/run"
    assert raw.request.headers == {"X-Api-Key": "secret://conn/prod/extra/headers/X-Api-Key",
                                   "x-a": "1"}
    assert raw.auth.type == "basic"  # a username, and not an Airflow target
    dumped = raw.model_dump_json()
    for value in ("conn-password-value", "header-key-value"):
        assert value not in dumped


@pytest.mark.usefixtures("env_conn")
def test_token_only_connection_is_a_bearer_and_keeps_the_spec_auth() -> None:
    from trigrun.airflow import TrigRunHook

    hook = TrigRunHook(trigrun_conn_id="token_only")
    spec = hook.apply({"name": "j", "request": {"url": "/x"}})
    assert spec.request.url == "https://api.example.com:8443/x"
    assert spec.auth.model_dump() == {"type": "bearer",
                                      "token": "secret://conn/token_only/password"}
    own = hook.apply({"name": "j", "request": {"url": "/x"},
                      "auth": {"type": "header", "name": "X-K", "value": "secret://var/k"}})
    assert own.auth.name == "X-K"


def test_auth_type_override_and_errors() -> None:
    from trigrun.airflow._spec import ConnectionInfo, apply_connection

    info = ConnectionInfo("c", "https://h", login=None, has_password=True, auth_type="header",
                          auth_header="X-Token")
    out = apply_connection({"name": "j", "request": {"url": "/a"}}, info)
    assert out["auth"] == {"type": "header", "name": "X-Token",
                           "value": "secret://conn/c/password"}
    with pytest.raises(SpecError, match="needs a Username"):
        apply_connection({"name": "j", "request": {"url": "/a"}},
                         ConnectionInfo("c", "https://h", has_password=True, auth_type="basic"))
    with pytest.raises(SpecError, match="cannot be used by trigrun"):
        apply_connection({"name": "j"}, ConnectionInfo("bad id!", "https://h"))
    with pytest.raises(SpecError, match="is relative but connection 'c' has no host"):
        apply_connection({"name": "j", "request": {"url": "/a"}}, ConnectionInfo("c", None))


# -- the operator's parse-time checks ---------------------------------------------------------

def test_operator_rejects_a_bad_spec_at_parse_time_naming_task_and_field() -> None:
    from trigrun.airflow import TrigRunOperator

    with pytest.raises(SpecError) as err:
        TrigRunOperator(task_id="fire", url="https://x.example.com/hook",
                        trigger_retry_policy={"max_attempts": 0})
    assert "task 'fire'" in str(err.value)
    assert "retry_policy.max_attempts" in str(err.value)
    with pytest.raises(SpecError, match="give a spec"):
        TrigRunOperator(task_id="empty")


def test_operator_accepts_a_jobspec_a_dict_or_fields() -> None:
    from trigrun import JobSpec
    from trigrun.airflow import TrigRunOperator

    seed = {"name": "seed", "request": {"url": "https://a.example.com/api/v1/dags/d/dagRuns",
                                        "headers": {"Authorization": "secret://key"}}}
    by_model = TrigRunOperator(task_id="a", spec=JobSpec.model_validate(seed))
    by_dict = TrigRunOperator(task_id="b", spec=seed)
    by_fields = TrigRunOperator(task_id="c", job_name="seed", url=seed["request"]["url"],
                                headers=seed["request"]["headers"])
    assert by_model.spec == by_dict.spec == by_fields.spec
    # A connection with no base URL in the spec is fine at parse time (looked up later).
    TrigRunOperator(task_id="d", target={"type": "airflow", "dag_id": "x"}, trigrun_conn_id="c")
    with pytest.raises(SpecError, match="base_url"):
        TrigRunOperator(task_id="e", target={"type": "airflow", "dag_id": "x"})


# -- provider registration --------------------------------------------------------------------

def test_provider_registers_connection_type_links_and_triggers() -> None:
    from airflow.providers_manager import ProvidersManager

    from tests.helpers.airflow_versions import runtime_hooks

    pm = ProvidersManager()
    assert "trigrun" in pm.providers
    hook = runtime_hooks()["trigrun"]
    assert hook is not None
    assert hook.hook_class_name == "trigrun.airflow.hooks.TrigRunHook"
    assert "trigrun.airflow.links.TrigRunLink" in pm.extra_links_class_names
    assert any(t.package_name == "trigrun" for t in pm.trigger)


@needs_airflow(3, 2, "the declarative connection form (conn-fields, ui-field-behaviour)")
def test_provider_declares_the_connection_form() -> None:
    from airflow.providers_manager import ProvidersManager

    pm = ProvidersManager()
    behaviour = pm.field_behaviours["trigrun"]
    assert behaviour["relabeling"]["host"] == "Base URL"
    assert "schema" in behaviour["hidden_fields"]
    assert "extra__trigrun__auth_type" in pm.connection_form_widgets


def test_lazy_package_and_install_hint_without_airflow() -> None:
    code = ("import sys; sys.modules['airflow'] = None\n"
            "import trigrun.airflow as ta, trigrun.airflow._provider as p\n"
            "assert p.get_provider_info()['package-name'] == 'trigrun'\n"
            "try:\n    ta.TrigRunOperator\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert "pip install 'trigrun[airflow]'" in out


def test_deferrable_defaults_to_operators_default_deferrable() -> None:
    code = ("from trigrun.airflow import TrigRunOperator, TrigRunSensor\n"
            "op = TrigRunOperator(task_id='t', url='https://x.example.com/hook')\n"
            "sensor = TrigRunSensor(task_id='s', run_id='1', url='https://x.example.com/h',"
            " wait={'status_url': 'https://x.example.com/r/{run_id}', 'status_path': 's',"
            " 'run_id_path': 'id'})\n"
            "print(op.deferrable, sensor.deferrable)\n")
    env = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True, env=env).stdout
    assert out.split()[-2:] == ["True", "True"]
