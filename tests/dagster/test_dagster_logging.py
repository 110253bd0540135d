"""What a waiting Dagster op writes to the run's event log: each state the downstream run
reaches, not every poll (every line is a row in Dagster's event log storage)."""

from __future__ import annotations

import logging

import dagster as dg
import pytest

from tests.helpers.httpserver import LocalServer, Reply
from trigrun.dagster import TrigRunResource, build_trigrun_job

pytestmark = pytest.mark.integration


def test_polls_that_repeat_a_state_are_debug() -> None:
    with LocalServer() as server:
        server.on("POST", "/trigger", Reply(200, json={"id": "run-7"}))
        states = ["running", "running", "running", "failed"]
        server.on("GET", "/status/{run_id}", *(Reply(json={"status": s}) for s in states))
        job = build_trigrun_job({
            "name": "quiet polls",
            "request": {"url": f"{server.url}/trigger"},
            "wait": {"status_url": f"{server.url}/status/{{run_id}}", "run_id_path": "id",
                     "status_path": "status", "poll_interval_seconds": 0.05}})
        with dg.DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(instance=instance, raise_on_error=False,
                                            resources={"trigrun": TrigRunResource()})
            entries = [e for e in instance.all_logs(result.run_id)
                       if "trigrun" in (e.user_message or "")]
    assert not result.success
    assert len(server.requests_to("/status/run-7")) == len(states)
    polls = [e for e in entries if e.user_message.startswith("trigrun poll:")]
    assert [e.level for e in polls] == [logging.INFO, logging.DEBUG, logging.DEBUG,
                                        logging.DEBUG], [(e.level, e.user_message) for e in polls]
    # The end is logged once at INFO by the wait, with the outcome.
    ends = [e for e in entries if "ended failed" in e.user_message and e.level == logging.INFO]
    assert len(ends) == 1, [e.user_message for e in entries]


def test_each_attempt_is_one_event_log_entry_with_the_trigrun_logger_managed() -> None:
    # Dagster copies a managed Python logger into the event log: the `trigrun` logger must
    # not repeat what the resource already logged through context.log.
    with LocalServer() as server:
        server.on("POST", "/trigger", Reply(503), Reply(200, json={"id": "run-8"}))
        server.on("GET", "/status/{run_id}", Reply(json={"status": "success"}))
        job = build_trigrun_job({
            "name": "managed",
            "request": {"url": f"{server.url}/trigger"},
            "retry_policy": {"max_attempts": 2, "initial_backoff_seconds": 0.01},
            "wait": {"status_url": f"{server.url}/status/{{run_id}}", "run_id_path": "id",
                     "status_path": "status", "poll_interval_seconds": 0.05}})
        overrides = {"python_logs": {"managed_python_loggers": ["trigrun"],
                                     "python_log_level": "INFO"}}
        with dg.instance_for_test(overrides=overrides) as instance:
            result = job.execute_in_process(instance=instance,
                                            resources={"trigrun": TrigRunResource()})
            messages = [e.user_message or "" for e in instance.all_logs(result.run_id)]
    assert result.success
    for attempt in ("attempt 1: HTTP 503", "attempt 2: HTTP 200"):
        assert len([m for m in messages if attempt in m]) == 1, messages
