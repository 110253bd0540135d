"""Definitions built from job specs: the example code location, the YAML component and its
registration, and loading with the network unreachable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster.components.core.package_entry import discover_entry_point_package_objects
from dagster.components.testing import create_defs_folder_sandbox
from dagster_shared.serdes.objects import EnvRegistryKey

from tests.helpers.httpserver import LocalServer, Reply
from trigrun import SpecError
from trigrun.dagster import (
    TrigRunComponent,
    TrigRunResource,
    build_trigrun_definitions,
    op_name_for,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_dagster"

# Loaded into every Python process of the validate command: any attempt to open a network
# connection or resolve a name is written down, and fails like an unreachable network would.
NET_GUARD = '''
import os, socket
_LOG = os.environ["TRIGRUN_NET_GUARD_LOG"]
def _deny(what):
    with open(_LOG, "a") as f:
        f.write(what + "\\n")
    raise OSError(101, "Network is unreachable (trigrun test guard)")
_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex
def connect(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect(self, address)
    _deny(f"connect {address!r}")
def connect_ex(self, address):
    if self.family == getattr(socket, "AF_UNIX", None):
        return _connect_ex(self, address)
    _deny(f"connect_ex {address!r}")
def getaddrinfo(host, *args, **kwargs):
    _deny(f"getaddrinfo {host!r}")
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
socket.getaddrinfo = getaddrinfo
'''


def _no_network_prefix() -> list[str]:
    """A new network namespace with no interface up, where the OS allows one."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], capture_output=True,
                                  check=False).returncode == 0:
        return [unshare, "-rn"]
    return []


@pytest.mark.integration
def test_dagster_definitions_validate_passes_on_the_example_with_no_network(
        tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NET_GUARD)
    attempts = tmp_path / "attempts.log"
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "TRIGRUN_"))}
    env.update({"PYTHONPATH": os.pathsep.join([str(guard), str(REPO)]),
                "TRIGRUN_NET_GUARD_LOG": str(attempts), "DAGSTER_HOME": str(home),
                "DAGSTER_DISABLE_TELEMETRY": "1"})
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")

    done = subprocess.run(
        [*_no_network_prefix(), str(dagster), "definitions", "validate", "-w",
         "example_dagster/workspace.yaml"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "All code locations passed validation" in output
    # The location's name is the dg project's: no "does not match" warning (six times, with -f).
    assert "does not match the name" not in output
    assert not attempts.exists(), attempts.read_text()
    # The guard was really loaded (else the check above proves nothing).
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('example.com', 443)"],
        env=env, capture_output=True, text=True, check=False)
    assert probe.returncode != 0
    assert "example.com" in attempts.read_text()


@pytest.fixture(scope="module")
def example_defs() -> dg.Definitions:
    from example_dagster.definitions import defs

    return defs


def test_example_has_the_lesson_the_pipeline_and_the_component(
        example_defs: dg.Definitions) -> None:
    repo = example_defs.get_repository_def()
    jobs = {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")}
    assert jobs == {"asteroid_extract", "asteroid_report_job", "extract", "transform",
                    "load_dashboards", "notify_team", "nightly_etl_production_to_warehouse",
                    "nightly_etl_done",
                    # The completion sensor's report job: its failed runs are failed
                    # downstream runs.
                    "trigrun_nightly_completion_sensor__downstream_failed"}
    schedules = {s.name: (s.cron_schedule, s.execution_timezone)
                 for s in repo.schedule_defs}
    assert schedules["date_range_schedule"] == ("0 6 * * *", "UTC")
    assert schedules["extract_schedule"] == ("0 1 * * *", "America/New_York")
    assert schedules["transform_schedule"] == ("0 2 * * *", "America/New_York")
    assert schedules["load_dashboards_schedule"] == ("0 3 * * *", "America/New_York")
    assert schedules["notify_team_schedule"] == ("0 4 * * *", "America/New_York")
    assert schedules["nightly_etl_production_to_warehouse_schedule"] == ("0 1 * * *", "UTC")
    assert {s.name for s in repo.sensor_defs} == {"trigrun_nightly_completion_sensor"}
    # Secrets are EnvVars, in the Python resource and in the component's.
    for key in ("trigrun", "trigrun_nightly"):
        resource = example_defs.resources[key]  # type: ignore[index]
        assert isinstance(resource, TrigRunResource)
        assert resource.secrets
        assert all(isinstance(v, dg.EnvVar) for v in resource.secrets.values())


def test_example_lesson_schedule_puts_the_tick_into_the_run_config(
        example_defs: dg.Definitions) -> None:
    # The seed lesson: run config from scheduled_execution_time (its TTL is 6 hours).
    schedule = example_defs.get_schedule_def("date_range_schedule")
    tick = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    data = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick))
    (request,) = data.run_requests or []
    assert request.run_key == tick.isoformat()
    assert request.run_config == {"ops": {op_name_for("asteroid_extract"): {"config": {
        "scheduled_time": tick.isoformat()}}}}
    late = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 8, 3, 6, tzinfo=timezone.utc)))
    assert not late.run_requests
    assert "ttl_seconds=21600" in (late.skip_message or "")


def test_component_is_registered_through_the_entry_point() -> None:
    objects = discover_entry_point_package_objects()
    key = EnvRegistryKey(name="TrigRunComponent", namespace="trigrun.dagster")
    assert objects[key] is TrigRunComponent


@pytest.mark.integration
def test_dg_lists_the_component_in_the_example_project(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(tmp_path)
    done = subprocess.run([str(Path(sys.executable).with_name("dg")), "list", "components",
                           "--json"], cwd=EXAMPLE, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    listing = json.loads(done.stdout[done.stdout.index("{"):])
    keys = {item["key"]: item["summary"] for item in listing["items"]}
    assert "trigrun jobs from a jobs file" in keys["trigrun.dagster.TrigRunComponent"]


def _component_defs(attributes: dict[str, Any],
                    files: dict[str, str] | None = None) -> dg.Definitions:
    """Load one TrigRunComponent from a defs.yaml in a real (temporary) defs folder."""
    with create_defs_folder_sandbox() as sandbox:
        folder = sandbox.defs_folder_path / "jobs"
        folder.mkdir()
        for name, text in (files or {}).items():
            (folder / name).write_text(textwrap.dedent(text))
        (folder / "defs.yaml").write_text(yaml.safe_dump(
            {"type": "trigrun.dagster.TrigRunComponent", "attributes": attributes}))
        with sandbox.load_component_and_build_defs(defs_path=folder) as (component, defs):
            assert isinstance(component, TrigRunComponent)
            return defs


def test_component_turns_env_var_names_into_envvars() -> None:
    defs = _component_defs({
        "jobs_file": "jobs.yaml",
        "secrets": {"api-key": "MY_API_KEY"},
    }, {"jobs.yaml": """
        - name: Refresh
          schedule: {cron: "15 3 * * *", timezone: Europe/Paris}
          request:
            url: https://api.example.com/refresh/{{ ds }}
            headers: {X-Key: "secret://api-key"}
    """})
    resource = defs.resources["trigrun"]  # type: ignore[index]
    assert resource.secrets == {"api-key": "MY_API_KEY"}
    assert isinstance(resource.secrets["api-key"], dg.EnvVar)
    job = defs.resolve_job_def("refresh")
    schedule = defs.get_schedule_def("refresh_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 3 * * *",
                                                                     "Europe/Paris")
    assert job.tags["trigrun/job"] == "Refresh"


@pytest.mark.integration
def test_component_inline_jobs_keep_their_templates_for_trigrun() -> None:
    with LocalServer() as server:
        server.on("POST", "/x", Reply(200, json={"ok": True}))
        defs = _component_defs({"jobs": [{
            "name": "Inline", "request": {"url": f"{server.url}/x",
                                          "body": {"day": "{{ ds }}", "p": "{{ params.x }}"}},
            "params": {"x": 1}}]})
        job = defs.resolve_job_def("inline")
        result = job.execute_in_process(run_config={"ops": {op_name_for("inline"): {"config": {
            # A trailing Z, as Dagster users write it: parsed on Python 3.10 too.
            "scheduled_time": "2026-05-05T09:00:00Z"}}}})
        assert result.success
        # Dagster left {{ ds }} alone; trigrun rendered it at fire time.
        (sent,) = server.requests_to("/x")
        assert sent.json() == {"day": "2026-05-05", "p": "1"}


@pytest.mark.parametrize("bad", ["{{ env.MY_SECRET }}", "s3cr3t value!"])
def test_component_refuses_secret_values_and_env_templates(
        bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "canary-never-resolved-9f2c"
    monkeypatch.setenv("MY_SECRET", canary)
    with pytest.raises(Exception, match="Error while loading component") as info:
        _component_defs({"jobs": [{"name": "J", "request": {
            "url": "https://h.example.com/x"}}], "secrets": {"api-key": bad}})
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None and len(chain) < 20:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    ours = [e for e in chain if type(e) is ValueError]
    assert ours, chain
    assert "secrets.api-key: give the NAME of an environment variable" in str(ours[0])
    assert bad not in str(ours[0])  # our message never echoes what was written there
    # Dagster quotes the YAML line in its error, but the template was never resolved.
    assert canary not in "\n".join(f"{e!r} {e}" for e in chain)


def test_definitions_from_a_jobs_file_name_every_problem(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("- {name: A, request: {url: 'https://h.example.com'}}\n"
                    "- {name: a, request: {url: 'https://h.example.com'}}\n")
    with pytest.raises(SpecError, match="both become Dagster job 'a'"):
        build_trigrun_definitions(jobs)
    jobs.write_text("- {name: B, schedule: {cron: 'not cron'}, request: {url: 'https://h.example.com'}}\n")
    with pytest.raises(SpecError, match=r"job 'B', field schedule\.cron"):
        build_trigrun_definitions(jobs)


def test_missing_dagster_names_the_extra() -> None:
    code = ("import sys; sys.modules['dagster'] = None\n"
            "try:\n    import trigrun.dagster\n"
            "except ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert "pip install 'trigrun[dagster]'" in done.stdout


def test_import_is_lazy_until_a_name_is_used() -> None:
    code = ("import sys, trigrun.dagster as t\n"
            "print('dagster' in sys.modules)\n"
            "t.build_trigrun_job\n"
            "print('dagster' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.split() == ["False", "True"]


def test_component_connection_settings_reach_the_resource() -> None:
    defs = _component_defs({
        "jobs": [{"name": "J", "request": {"url": "https://h.example.com/x"}}],
        "proxy_env": "CORP_PROXY_URL", "ca_bundle": "system", "cert": "/etc/client.pem",
        "cert_key": "/etc/client.key", "trust_env": False})
    resource = defs.resources["trigrun"]  # type: ignore[index]
    assert isinstance(resource.proxy, dg.EnvVar)  # the UI shows the name, never the URL
    assert resource.proxy == "CORP_PROXY_URL"
    assert (resource.ca_bundle, resource.cert, resource.cert_key, resource.trust_env) == (
        "system", "/etc/client.pem", "/etc/client.key", False)


def test_component_refuses_a_proxy_password_in_plain_text() -> None:
    with pytest.raises(Exception, match="TrigRunComponent") as info:
        _component_defs({"jobs": [{"name": "J", "request": {"url": "https://h.example.com/x"}}],
                         "proxy": "http://user:hunter2-pw@proxy.corp:3128"})
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None and len(chain) < 20:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert any("proxy_env" in str(e) for e in chain), chain
