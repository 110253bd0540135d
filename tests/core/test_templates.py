"""Templates, TTL and overlap, against the real local server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import trigrun
from tests.helpers.clock import FakeClock
from tests.helpers.drive import Driver
from tests.helpers.fakes import FakeAirflow
from tests.helpers.httpserver import LocalServer, Reply

pytestmark = pytest.mark.integration

TOKEN = "tok-8841-canary"
SECRETS = {"tok": TOKEN, "other": "other-secret-value"}


def templated(server: LocalServer, **over: Any) -> trigrun.JobSpec:
    return trigrun.JobSpec.model_validate({
        "name": "Nightly ETL",
        "params": {"model": "v3"},
        "request": {
            "url": server.url + "/hook/{{ ds }}?job={{ job.slug }}&m={{ params.model }}",
            "headers": {"X-Scheduled": "{{ scheduled_time }}", "X-Job": "{{ job.name }}",
                        "Authorization": "Bearer secret://tok", "X-Day": "{{ ds_nodash }}"},
            "body": {"date": "{{ ds }}", "model": "{{ params.model }}",
                     "logical": "{{ logical_date }}", "key": "secret://tok",
                     "list": ["{{ params.model | upper }}", 1]},
        },
        **over,
    })


def test_templates_render_everywhere(server: LocalServer, clock: FakeClock,
                                     make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook/2026-03-16", Reply(200))
    result = make_driver(secrets=SECRETS).fire(templated(server), scheduled_time=clock.now())
    assert result.ok, result.error
    (req,) = server.requests
    assert req.query == {"job": ["nightly_etl"], "m": ["v3"]}
    assert req.headers["x-scheduled"] == "2026-03-16T01:00:00+00:00"
    assert req.headers["x-job"] == "Nightly ETL"
    assert req.headers["x-day"] == "20260316"
    assert req.headers["authorization"] == f"Bearer {TOKEN}"
    assert req.json() == {"date": "2026-03-16", "model": "v3",
                          "logical": "2026-03-16T01:00:00+00:00", "key": TOKEN,
                          "list": ["V3", 1]}
    # The rendered spec (what a UI shows) holds references, never the value.
    rendered = result.spec
    assert rendered is not None
    assert rendered.request is not None
    assert rendered.request.url.endswith("/hook/2026-03-16?job=nightly_etl&m=v3")
    assert rendered.request.headers["Authorization"] == "Bearer secret://tok"
    assert rendered.request.body["key"] == "secret://tok"
    assert TOKEN not in rendered.model_dump_json()


def test_context_params_override_spec_params(server: LocalServer, clock: FakeClock,
                                             make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/hook/2026-03-16", Reply(200))
    result = make_driver(secrets=SECRETS).fire(
        templated(server), context={"params": {"model": "v4"}}, scheduled_time=clock.now())
    assert result.ok
    assert server.requests[0].json()["model"] == "v4"


def test_short_form_target_fields_render(server: LocalServer, clock: FakeClock,
                                         make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server)
    job = trigrun.JobSpec.model_validate({
        "name": "af", "params": {"dag": "etl"},
        "target": {"type": "airflow", "base_url": server.url, "dag_id": "{{ params.dag }}",
                   "api_version": "v2", "conf": {"day": "{{ ds }}", "job": "{{ job.name }}"},
                   "note": "fired for {{ ds }}"},
        "idempotency": {"key": "{{ job.slug }}-{{ ds_nodash }}"}})
    result = make_driver().fire(job, scheduled_time=clock.now())
    assert result.ok, result.error
    assert result.idempotency_key == "af-20260316"
    (body,) = [r.json() for r in server.requests_to("/api/v2/dags/etl/dagRuns")]
    assert body["conf"] == {"day": "2026-03-16", "job": "af"}
    assert body["note"] == "fired for 2026-03-16"
    assert body["dag_run_id"] == "af-20260316"
    assert list(fake.runs) == [("etl", "af-20260316")]


def test_render_false_sends_templates_verbatim(server: LocalServer, clock: FakeClock,
                                               make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/raw", Reply(200))
    job = trigrun.JobSpec.model_validate({"name": "raw", "request": {
        "url": server.url + "/raw", "headers": {"X-T": "{{ ds }}"},
        "body": {"jinja": "{{ ds }} {% if x %}y{% endif %}", "key": "secret://tok"}}})
    result = make_driver(secrets=SECRETS).fire(job, scheduled_time=clock.now(), render=False)
    assert result.ok
    (req,) = server.requests
    assert req.headers["x-t"] == "{{ ds }}"
    assert req.json() == {"jinja": "{{ ds }} {% if x %}y{% endif %}", "key": TOKEN}


@pytest.mark.parametrize(("field", "value", "words"), [
    ("body", {"date": "{{ params.nope }}"}, "field request.body.date: template error"),
    ("body", {"date": "{{ ds "}, "field request.body.date: template error"),
    ("headers", {"X": "{{ ''.__class__.__mro__ }}"}, "field request.headers.X: template error"),
    ("url", "{{ params.base }}/x", "field request.url"),
])
def test_template_error_is_a_spec_error(server: LocalServer, clock: FakeClock,
                                        make_driver: Callable[..., Driver], field: str,
                                        value: Any, words: str) -> None:
    request: dict[str, Any] = {"url": server.url + "/x", field: value}
    job = trigrun.JobSpec.model_validate({"name": "broken", "request": request,
                                          "params": {"base": "not-a-url"}})
    with pytest.raises(trigrun.SpecError) as err:
        make_driver().fire(job, scheduled_time=clock.now())
    assert "job 'broken'" in str(err.value)
    assert words in str(err.value)
    assert server.requests == []


def test_context_cannot_smuggle_a_secret_reference(server: LocalServer, clock: FakeClock,
                                                   make_driver: Callable[..., Driver]) -> None:
    # Someone who can set a run's params must not be able to make trigrun send a secret.
    server.on("POST", "/x", Reply(200))
    job = trigrun.JobSpec.model_validate({"name": "j", "request": {
        "url": server.url + "/x", "body": {"note": "{{ params.note }}"}}})
    with pytest.raises(trigrun.SpecError, match=r"field request\.body\.note.*secret://other"):
        make_driver(secrets=SECRETS).fire(job, context={"params": {"note": "secret://other"}},
                                          scheduled_time=clock.now())
    assert server.requests == []


def test_author_written_dynamic_reference_is_resolved(server: LocalServer, clock: FakeClock,
                                                      make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/x", Reply(200))
    job = trigrun.JobSpec.model_validate({
        "name": "j", "params": {"env": "tok", "auth": "secret://other"},
        "request": {"url": server.url + "/x",
                    "headers": {"X-A": "secret://{{ params.env }}", "X-B": "{{ params.auth }}"}}})
    assert make_driver(secrets=SECRETS).fire(job, scheduled_time=clock.now()).ok
    h = server.requests[0].headers
    assert (h["x-a"], h["x-b"]) == (TOKEN, "other-secret-value")


def test_ttl_skips_a_late_fire(server: LocalServer, clock: FakeClock,
                               make_driver: Callable[..., Driver]) -> None:
    server.on("POST", "/x", Reply(200))
    events: list[trigrun.Event] = []
    job = trigrun.JobSpec.model_validate({"name": "ttl", "ttl_seconds": 600,
                                          "request": {"url": server.url + "/x"}})
    d = make_driver(on_event=events.append)
    late = d.fire(job, scheduled_time=clock.now() - timedelta(hours=1))
    assert late.ok
    assert late.skipped
    assert late.attempts == ()
    assert late.status_code is None
    assert late.reason is not None
    assert "ttl" in late.reason
    assert "ttl_seconds=600" in late.reason
    assert server.requests == []
    assert [e.kind for e in events] == ["skip"]
    assert late.to_log()["skipped"] is True
    on_time = d.fire(job, scheduled_time=clock.now() - timedelta(minutes=5))
    assert on_time.ok
    assert not on_time.skipped
    assert len(server.requests) == 1


@pytest.mark.parametrize("overlap", ["skip", "reuse"])
def test_overlap_with_an_active_run(server: LocalServer, clock: FakeClock, overlap: str,
                                    make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server)
    fake.add_run("etl", "scheduled__earlier", "running")
    fake.add_run("etl", "old", "success")
    job = trigrun.JobSpec.model_validate({
        "name": "ov", "overlap": overlap,
        "target": {"type": "airflow", "base_url": server.url, "dag_id": "etl",
                   "api_version": "v2"}})
    result = make_driver().fire(job, scheduled_time=clock.now())
    assert result.ok
    assert server.requests_to("/api/v2/dags/etl/dagRuns", "POST") == []
    assert len(fake.runs) == 2
    assert result.reason is not None
    assert "scheduled__earlier" in result.reason
    if overlap == "skip":
        assert result.skipped
        assert result.run_id is None
    else:
        assert result.adopted
        assert not result.skipped
        assert result.run_id == "scheduled__earlier"


def test_overlap_without_an_active_run_fires(server: LocalServer, clock: FakeClock,
                                             make_driver: Callable[..., Driver]) -> None:
    fake = FakeAirflow(server)
    fake.add_run("etl", "old", "failed")
    job = trigrun.JobSpec.model_validate({
        "name": "ov", "overlap": "skip",
        "target": {"type": "airflow", "base_url": server.url, "dag_id": "etl",
                   "api_version": "v2"}})
    result = make_driver().fire(job, scheduled_time=clock.now())
    assert result.ok
    assert not result.skipped
    assert len(fake.runs) == 2


def test_overlap_check_failing_is_reported(server: LocalServer, clock: FakeClock,
                                           make_driver: Callable[..., Driver]) -> None:
    server.on("GET", "/api/v2/dags/etl/dagRuns", Reply(500))
    job = trigrun.JobSpec.model_validate({
        "name": "ov", "overlap": "skip",
        "target": {"type": "airflow", "base_url": server.url, "dag_id": "etl",
                   "api_version": "v2"}})
    result = make_driver().fire(job, scheduled_time=clock.now())
    assert not result.ok
    assert result.error is not None
    assert "could not list active runs" in result.error
    assert "HTTP 500" in result.error
    assert server.requests_to("/api/v2/dags/etl/dagRuns", "POST") == []


def test_naive_scheduled_time_is_rejected(server: LocalServer,
                                          make_driver: Callable[..., Driver]) -> None:
    job = trigrun.JobSpec.model_validate({"name": "n", "request": {"url": server.url + "/x"}})
    with pytest.raises(trigrun.SpecError, match="no time zone"):
        make_driver().fire(job, scheduled_time=FakeClock().now().replace(tzinfo=None))
    assert server.requests == []


@pytest.mark.parametrize("env", ["x secret://other ", "other ", "x\tsecret://other"])
def test_a_value_spliced_into_a_reference_cannot_name_another_secret(
        server: LocalServer, clock: FakeClock, make_driver: Callable[..., Driver],
        env: str) -> None:
    # The author wrote secret://api-{{ params.env }}; a run's params must not be able to
    # widen that into another reference ("other" is a secret the resolver knows).
    server.on("POST", "/x", Reply(200))
    job = trigrun.JobSpec.model_validate({"name": "j", "request": {
        "url": server.url + "/x", "headers": {"X-A": "secret://{{ params.env }}"},
        "body": {"k": "secret://api-{{ params.env }}"}}})
    with pytest.raises(trigrun.SpecError, match=r"secret://other"):
        make_driver(secrets=SECRETS).fire(job, context={"params": {"env": env}},
                                          scheduled_time=clock.now())
    assert server.requests == []
