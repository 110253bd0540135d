"""``TrigRunResource`` behind a proxy (issue 11): the environment's proxy, the resource's own
proxy with credentials from ``EnvVar``, and ``NO_PROXY``, with Dagster running the job for
real. The proxy (``tests/helpers/proxy.py``) logs every request it handled; its password must
appear nowhere Dagster keeps or shows things."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from tests.dagster.helpers import run_logs
from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer
from tests.helpers.proxy import ForwardProxy
from trigrun.dagster import TrigRunResource, build_trigrun_job

PROXY_USER = "svc-dagster"
PROXY_PASSWORD = "dg-pr0xy-Pa55-5c0ffee1"  # the canary
ENV = "TRIGRUN_TEST_PROXY_URL"

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def downstream() -> Iterator[tuple[LocalServer, FakeAirflow]]:
    with LocalServer() as srv:
        yield srv, FakeAirflow(srv, states=["running", "success"])


def _job(srv: LocalServer) -> dg.JobDefinition:
    return build_trigrun_job({
        "name": "via proxy", "target": {"type": "airflow", "base_url": srv.url,
                                        "dag_id": "downstream", "api_version": "v2"},
        "wait": {"poll_interval_seconds": 0.1, "timeout_seconds": 30}})


def _run(job: dg.JobDefinition, resource: TrigRunResource,
         instance: dg.DagsterInstance) -> Any:
    return job.execute_in_process(resources={"trigrun": resource}, instance=instance,
                                  raise_on_error=False)


def test_the_environment_proxy_is_used(downstream: tuple[LocalServer, FakeAirflow],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    srv, fake = downstream
    with ForwardProxy() as proxy, dg.instance_for_test() as instance:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        result = _run(_job(srv), TrigRunResource(), instance)
        seen = proxy.entries()
    assert result.success
    assert len(fake.runs) == 1
    assert [e.method for e in seen][:1] == ["POST"]
    assert any(e.method == "GET" for e in seen)
    assert len(seen) == len(srv.requests)


def test_no_proxy_and_trust_env_false_bypass_it(downstream: tuple[LocalServer, FakeAirflow],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    srv, fake = downstream
    with ForwardProxy() as proxy, dg.instance_for_test() as instance:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        assert _run(_job(srv), TrigRunResource(trust_env=False), instance).success
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert _run(_job(srv), TrigRunResource(), instance).success
        assert proxy.entries() == []
    # Both fires reached the target directly (one run or two: two fires within the same
    # second share an idempotency key).
    assert len([r for r in srv.requests if r.method == "POST"]) == 2
    assert 1 <= len(fake.runs) <= 2


def test_the_resources_proxy_with_credentials_leaks_nowhere(
        downstream: tuple[LocalServer, FakeAirflow], monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    srv, fake = downstream
    with ForwardProxy(credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy, \
            dg.instance_for_test() as instance:
        monkeypatch.setenv(ENV, proxy.url_with(PROXY_USER, PROXY_PASSWORD))
        resource = TrigRunResource(proxy=dg.EnvVar(ENV))
        result = _run(_job(srv), resource, instance)
        seen = proxy.entries()
        logs = run_logs(instance, result.run_id)
    assert result.success
    assert seen
    assert {e.auth for e in seen} == {"right"}
    assert len(fake.runs) == 1
    out = capfd.readouterr()
    for text in (logs, out.out, out.err, repr(resource)):
        assert PROXY_PASSWORD not in text
