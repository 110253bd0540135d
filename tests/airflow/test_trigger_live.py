"""TrigRunTrigger against the live Airflow 3 server: serialization round trip, resuming after a
triggerer restart without re-triggering, and ``on_kill``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from tests.airflow._live import Live

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _spec(dag_id: str, source: str) -> Any:
    """The spec exactly as the operator would hand it to its trigger (connection applied)."""
    from trigrun.airflow import TrigRunOperator

    op = TrigRunOperator(task_id="t", job_name=f"trigger test {source}",
                         target={"type": "airflow", "dag_id": dag_id,
                                 "conf": {"source": source}},
                         trigrun_conn_id="trigrun_live")
    return op.job_spec()


def _fire(spec: Any) -> Any:
    from datetime import datetime, timezone

    from trigrun.airflow.hooks import sync_engine

    with sync_engine() as engine:
        return engine.fire(spec, render=False,
                           scheduled_time=datetime.now(timezone.utc)).raise_for_failure()


def _make_trigger(spec: Any, result: Any, deadline: float = 120) -> Any:
    from trigrun.airflow import TrigRunTrigger
    from trigrun.airflow._spec import spec_to_dict

    return TrigRunTrigger(spec=spec_to_dict(spec), run_id=result.run_id,
                          end_time=time.time() + deadline, poll_interval=1,
                          run_url=result.run_url, conn_id="trigrun_live")


def _as_the_triggerer_rebuilds_it(trigger: Any) -> tuple[Any, str]:
    """Through Airflow's own Trigger row encoding and the triggerer's decoding."""
    from airflow.models.trigger import Trigger
    from airflow.sdk.module_loading import import_string
    from airflow.sdk.serde import serialize
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    row = Trigger.from_object(trigger)
    kwargs = Trigger._decrypt_kwargs(row.encrypted_kwargs)
    rebuilt = import_string(row.classpath)(
        **{k: smart_decode_trigger_kwargs(v) for k, v in kwargs.items()})
    plain = json.dumps(serialize(trigger.serialize()[1]))  # what is stored, before any Fernet
    return rebuilt, plain


def test_serialize_round_trips_with_secret_references_only(live: Live) -> None:
    spec = _spec("trigrun_target", "round-trip")
    trigger = _make_trigger(spec, type("R", (), {"run_id": "run-1", "run_url": None})())
    rebuilt, plain = _as_the_triggerer_rebuilds_it(trigger)
    assert type(rebuilt) is type(trigger)
    assert rebuilt.serialize() == trigger.serialize()
    assert "secret://conn/trigrun_live/password" in plain
    for secret in live.secrets:
        assert secret not in plain
        assert secret not in repr(rebuilt)


def test_rebuilt_trigger_resumes_the_same_run_without_triggering_again(live: Live) -> None:
    source = f"resume-{uuid.uuid4().hex[:8]}"
    spec = _spec("trigrun_target", source)
    fired = _fire(spec)
    first = _make_trigger(spec, fired)

    async def poll_then_triggerer_stops() -> None:
        task = asyncio.ensure_future(anext(first.run()))
        await asyncio.sleep(2.5)  # a few polls
        task.cancel()  # a triggerer shutdown: no user action, so no on_kill
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(poll_then_triggerer_stops())
    assert live.server.dag_run("trigrun_target", fired.run_id)["state"] != "failed"
    rebuilt, _ = _as_the_triggerer_rebuilds_it(first)
    event = asyncio.run(anext(rebuilt.run())).payload
    assert event["status"] == "success"
    assert event["run_id"] == fired.run_id
    runs = live.target_runs(source)
    assert [r["dag_run_id"] for r in runs] == [fired.run_id]  # no second trigger request


def test_trigger_on_kill_marks_the_live_run_failed(live: Live) -> None:
    source = f"kill-{uuid.uuid4().hex[:8]}"
    spec = _spec("trigrun_slow_target", source)
    fired = _fire(spec)
    trigger = _make_trigger(spec, fired)
    live.server.wait_for_run("trigrun_slow_target", fired.run_id, ("running",), timeout=60)

    async def user_kills_the_task() -> None:
        task = asyncio.ensure_future(anext(trigger.run()))
        await asyncio.sleep(1.5)
        task.cancel("user action")
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.on_kill()

    asyncio.run(user_kills_the_task())
    run = live.server.wait_for_run("trigrun_slow_target", fired.run_id, ("failed", "success"),
                                   timeout=30)
    assert run["state"] == "failed"
