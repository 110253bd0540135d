"""What every supported Airflow minor (3.0 to 3.3) must run: the compatibility matrix
(``scripts/test-matrix.sh``) runs this module in a venv per minor.

One deferrable ``dag.test()`` end to end: the trigger request carries a header from a
``secret://`` reference (an Airflow variable), the trigger in the in-process triggerer waits for
the run through the engine's poll group (the batched-poll flush; a lone wait's check goes out
on its own), and the secret's value reaches the target only - never the logs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers.airflow_versions import AIRFLOW
from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer

SECRET = "matrix-secret-value-7f3a9c"


@pytest.fixture
def fake_airflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAirflow]:
    monkeypatch.setenv("AIRFLOW_VAR_TRIGRUN_MATRIX_KEY", SECRET)
    with LocalServer() as srv:
        monkeypatch.setenv("AIRFLOW_CONN_TRIGRUN_MATRIX",
                           json.dumps({"conn_type": "trigrun", "host": srv.url}))
        yield FakeAirflow(srv, states=["queued", "running", "success"])


@pytest.mark.usefixtures("airflow_db")
def test_a_deferrable_task_sends_a_secret_header_and_waits_in_the_triggerer(
        fake_airflow: FakeAirflow, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import AIRFLOW_TEST_DAGS
    from tests.helpers.airflow_versions import DagBag

    bag = DagBag(dag_folder=str(AIRFLOW_TEST_DAGS / "trigrun_matrix.py"))
    assert not bag.import_errors, bag.import_errors
    dr = bag.dags["trigrun_matrix_deferrable"].test(logical_date=None)
    assert dr.state == "success", f"Airflow {AIRFLOW}: {dr.state}"

    requests = fake_airflow.server.requests
    posts = [r for r in requests if r.method == "POST" and r.path.endswith("/dagRuns")]
    assert len(posts) == 1
    reads = [r for r in requests if r.method == "GET"]
    assert reads, "the trigger never read the run"
    assert {r.headers.get("x-api-key") for r in [*posts, *reads]} == {SECRET}
    assert json.loads(posts[0].body)["conf"]["source"] == dr.run_id
    (run,) = fake_airflow.runs.values()
    assert run.state == "success"

    logged = capsys.readouterr()
    lines = "".join([logged.out, logged.err, caplog.text]).splitlines()
    # Airflow 3.0's supervisor channel logs each request at DEBUG, its own MaskSecret messages
    # (the masker's input, sent by Variable.get too) included; every other line is checked.
    if AIRFLOW < (3, 1):
        lines = [line for line in lines if "MaskSecret(value=" not in line]
    assert not [line for line in lines if SECRET in line]


@pytest.mark.parametrize("version", ["2.10.5", "4.0.0"])
def test_the_provider_registers_nothing_on_an_unsupported_airflow(
        version: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from trigrun.airflow import _provider

    monkeypatch.setattr(_provider, "installed_airflow", lambda: version)
    monkeypatch.setattr(_provider, "_warned", False)
    info = _provider.get_provider_info()
    again = _provider.get_provider_info()
    assert info["package-name"] == "trigrun"
    assert not {"connection-types", "hooks", "triggers", "extra-links", "operators"} & set(info)
    assert again == info
    warnings = [r.getMessage() for r in caplog.records if r.name == _provider.__name__]
    assert len(warnings) == 1  # one message, however often Airflow asks
    assert f"Airflow {version} is installed" in warnings[0]
    assert "Apache Airflow 3.0 to 3.x" in warnings[0]
    assert "pip install 'trigrun[airflow]'" in warnings[0]


def test_the_provider_registers_everything_on_this_airflow() -> None:
    from trigrun.airflow._provider import get_provider_info

    info = get_provider_info()
    assert info["connection-types"][0]["hook-class-name"] == "trigrun.airflow.hooks.TrigRunHook"
    assert "trigrun.airflow.triggers" in info["triggers"][0]["python-modules"]


def test_the_installed_airflow_is_read_from_airflow_itself_once_imported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside Airflow (provider discovery) its own ``__version__``, no metadata scan; the
    same version the distribution's metadata names."""
    from importlib import metadata

    import airflow

    from trigrun.airflow import _versions

    assert airflow.__version__ == metadata.version("apache-airflow-core")

    def no_scan(name: str) -> str:
        raise AssertionError(f"metadata lookup of {name} with Airflow imported")

    monkeypatch.setattr(_versions.metadata, "version", no_scan)
    assert _versions.installed_airflow() == airflow.__version__
