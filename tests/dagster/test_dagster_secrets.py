"""A canary secret given through ``EnvVar`` is used, and shows up nowhere: not in Dagster's
logs (stdout/stderr, the event log), not in metadata or the op's output, not in a Failure,
not in anything the instance stored. The target is a real HTTP server on loopback that even
echoes the secret back in its replies."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest

from tests.dagster.helpers import failure_metadata, output_metadata, run_logs
from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun.dagster import TrigRunResource, build_trigrun_job, op_name_for

CANARY = "canary-" + secrets.token_hex(12)
ENV = "TRIGRUN_TEST_INPROCESS_CANARY"

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def resource(monkeypatch: pytest.MonkeyPatch) -> TrigRunResource:
    monkeypatch.setenv(ENV, CANARY)
    return TrigRunResource(secrets={"canary": dg.EnvVar(ENV)}, env_secrets_prefix="")


def _echo(code: int, state: str | None = None) -> Callable[[Recorded], Reply]:
    """A handler that echoes the Authorization header back, as a careless API might."""
    def handler(req: Recorded) -> Reply:
        body = {"id": "run-1", "you_sent": req.headers.get("authorization")}
        if state is not None:
            body["status"] = state
        return Reply(code, json=body)
    return handler


def _spec(server: LocalServer, name: str) -> dict[str, object]:
    return {
        "name": name,
        "request": {"url": f"{server.url}/trigger?token=secret://canary",
                    "headers": {"Authorization": "Bearer secret://canary"},
                    "body": {"date": "{{ ds }}", "key": "secret://canary"}},
        "retry_policy": {"max_attempts": 2, "initial_backoff_seconds": 0.01, "jitter": 0},
        "wait": {"status_url": f"{server.url}/status/{{run_id}}", "run_id_path": "id",
                 "status_path": "status", "poll_interval_seconds": 0.1,
                 "timeout_seconds": 30},
    }


def _stored_bytes(instance: dg.DagsterInstance) -> bytes:
    root = Path(instance.root_directory)
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_canary_is_sent_but_never_logged_or_stored(
        server: LocalServer, resource: TrigRunResource, instance: dg.DagsterInstance,
        capfd: pytest.CaptureFixture[str]) -> None:
    server.on("POST", "/trigger", Reply(503, body=f"upstream said {CANARY}"), _echo(200))
    server.on("GET", "/status/run-1", _echo(200, "running"), _echo(200, "success"))
    job = build_trigrun_job(_spec(server, "Canary ok"))

    result = job.execute_in_process(
        instance=instance, resources={"trigrun": resource},
        run_config={"ops": {op_name_for(job.name): {"config": {
            "scheduled_time": "2026-05-01T01:00:00+00:00"}}}})

    assert result.success
    # The secret really went out, in the header, the query and the body, on every attempt.
    sent = server.requests_to("/trigger")
    assert len(sent) == 2
    for req in sent:
        assert req.headers["authorization"] == f"Bearer {CANARY}"
        assert req.query["token"] == [CANARY]
        assert req.json() == {"date": "2026-05-01", "key": CANARY}
    assert server.requests_to("/status/run-1")[0].headers["authorization"] == f"Bearer {CANARY}"
    # ...and is nowhere on the Dagster side.
    md = output_metadata(result)
    assert md["response"].value["you_sent"] == "Bearer ***"
    out, err = capfd.readouterr()
    assert "attempt 2: HTTP 200" in err  # the logs are there, and clean
    assert CANARY not in out + err
    assert CANARY not in json.dumps({k: str(v.value) for k, v in md.items()})
    assert CANARY not in json.dumps(result.output_for_node(op_name_for(job.name)), default=str)
    assert CANARY not in run_logs(instance, result.run_id)
    assert CANARY.encode() not in _stored_bytes(instance)
    assert CANARY not in repr(TrigRunResource(secrets={"canary": CANARY}))


def test_canary_stays_out_of_failures(
        server: LocalServer, resource: TrigRunResource, instance: dg.DagsterInstance,
        capfd: pytest.CaptureFixture[str]) -> None:
    server.on("POST", "/trigger", _echo(401))
    job = build_trigrun_job(_spec(server, "Canary refused"))

    result = job.execute_in_process(instance=instance, resources={"trigrun": resource},
                                    raise_on_error=False)

    assert not result.success
    assert len(server.requests_to("/trigger")) == 1  # a 401 is not retried
    description, md = failure_metadata(result)
    assert "HTTP 401" in description
    assert md["status_code"].value == 401
    assert md["response"].value["you_sent"] == "Bearer ***"
    out, err = capfd.readouterr()
    assert CANARY not in description + out + err
    assert CANARY not in json.dumps({k: str(v.value) for k, v in md.items()})
    assert CANARY not in run_logs(instance, result.run_id)
    assert CANARY.encode() not in _stored_bytes(instance)
