"""DAGs for the trust model (issue 19): whoever triggers a run with conf, or an upstream task
through mapped XCom, must not be able to send a connection's or a spec's credentials to
another origin, nor have a value evaluated as a template.

The connections (``sec_*``) and the two local listeners' addresses come from the tests
(``AIRFLOW_CONN_*``, ``TRIGRUN_SEC_A``): parsing needs no server.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param, task

from trigrun.airflow import TrigRunOperator, TrigRunSensor

START = datetime(2024, 1, 1, tzinfo=timezone.utc)
COMMON: dict[str, Any] = {"schedule": None, "start_date": START, "catchup": False,
                          "tags": ["trigrun-security"]}
A = os.environ.get("TRIGRUN_SEC_A", "http://127.0.0.1:9")

# A bearer-token connection; the run conf picks the URL.
with DAG(dag_id="sec_conf_url", **COMMON):
    TrigRunOperator(task_id="t", trigrun_conn_id="sec_token", url="{{ dag_run.conf['url'] }}",
                    body={"x": 1}, wait_for_completion=False)

# The same with the allow-list on the connection's extra.
with DAG(dag_id="sec_conf_url_allowed", **COMMON):
    TrigRunOperator(task_id="t", trigrun_conn_id="sec_token_allow",
                    url="{{ dag_run.conf['url'] }}", body={"x": 1}, wait_for_completion=False)

# A relative URL under the connection's host: the conf picks only the path.
with DAG(dag_id="sec_relative", **COMMON):
    TrigRunOperator(task_id="t", trigrun_conn_id="sec_token",
                    url="/hook/{{ dag_run.conf.get('path', 'x') }}", body={"x": 1},
                    wait_for_completion=False)

# A login/password connection and an Airflow target whose base URL the conf picks: the
# password would be POSTed to <base>/auth/token.
with DAG(dag_id="sec_conf_base", **COMMON):
    TrigRunOperator(task_id="t", trigrun_conn_id="sec_login", wait_for_completion=False,
                    target={"type": "airflow", "base_url": "{{ dag_run.conf['base'] }}",
                            "dag_id": "target"})

# dbt Cloud preset, token connection, base URL from conf.
with DAG(dag_id="sec_dbt_base", **COMMON):
    TrigRunOperator(task_id="t", trigrun_conn_id="sec_token", wait_for_completion=False,
                    target={"type": "dbt_cloud", "base_url": "{{ dag_run.conf['base'] }}",
                            "account_id": 1, "job_id": 2})

# spec= with the spec's own secret:// header; a Param default that run conf overrides. The
# URL's origin is known only after rendering, so the spec lists the one it may go to.
with DAG(dag_id="sec_param", params={"url": Param(f"{A}/hook", type="string")}, **COMMON):
    TrigRunOperator(task_id="t", wait_for_completion=False, spec={
        "allowed_origins": [A],
        "request": {"url": "{{ params.url }}",
                    "headers": {"Authorization": "Bearer secret://var/sec_token"}}})

# The spec names its origin literally: templates only after the host.
with DAG(dag_id="sec_literal_host", **COMMON):
    TrigRunOperator(task_id="t", wait_for_completion=False, spec={
        "request": {"url": A + "/hook/{{ dag_run.conf.get('path', 'x') }}",
                    "headers": {"Authorization": "Bearer secret://var/sec_token"}}})

# The sensor: the conf picks where the status checks (with the connection's token) go.
with DAG(dag_id="sec_sensor", **COMMON):
    TrigRunSensor(task_id="t", trigrun_conn_id="sec_token", run_id="r1", poke_interval=1,
                  timeout=5, mode="reschedule",
                  target={"type": "airflow", "base_url": "{{ dag_run.conf['base'] }}",
                          "dag_id": "target"})


# An upstream task's values mapped into the operator: data, never templates.
@task
def upstream_kwargs() -> list[dict[str, Any]]:
    return [{"body": {"stolen": "{{ conn.sec_other.password }}"}}]


@task
def upstream_plain() -> list[dict[str, Any]]:
    return [{"body": {"plain": "value {not a template}"}}]


with DAG(dag_id="sec_mapped_template", **COMMON):
    TrigRunOperator.partial(task_id="m", trigrun_conn_id="sec_token", url="/hook",
                            wait_for_completion=False).expand_kwargs(upstream_kwargs())

with DAG(dag_id="sec_mapped_plain", **COMMON):
    TrigRunOperator.partial(task_id="m", trigrun_conn_id="sec_token", url="/hook",
                            wait_for_completion=False).expand_kwargs(upstream_plain())


@task
def upstream_rendered() -> list[dict[str, Any]]:
    return [{"body": {"dag": "{{ dag_run.dag_id }}"}}]


with DAG(dag_id="sec_mapped_opt_in", **COMMON):
    TrigRunOperator.partial(task_id="m", trigrun_conn_id="sec_token", url="/hook",
                            render_mapped_values=True,
                            wait_for_completion=False).expand_kwargs(upstream_rendered())


# Sections the DAG file check cannot see: the spec changed after the operator was built. The
# run conf then supplies a whole section (a native object), or an allowed_origins entry.
OWN = {"headers": {"Authorization": "Bearer secret://var/sec_token"}}
with DAG(dag_id="sec_conf_section", render_template_as_native_obj=True, **COMMON):
    late = TrigRunOperator(task_id="t", wait_for_completion=False, spec={
        "allowed_origins": [A], "request": {"url": A + "/hook"},
        "auth": {"type": "bearer", "token": "secret://var/sec_token"}})
    late.spec["request"] = "{{ dag_run.conf['req'] }}"

with DAG(dag_id="sec_conf_allow_list", **COMMON):
    late = TrigRunOperator(task_id="t", wait_for_completion=False,
                           spec={"request": {"url": "{{ dag_run.conf['url'] }}", **OWN}})
    late.spec["allowed_origins"] = ["{{ dag_run.conf['o'] }}"]
