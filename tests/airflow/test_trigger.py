"""TrigRunTrigger against a scripted HTTP server on 127.0.0.1 (webhook preset).

The trigger runs as the triggerer runs it: ``run()`` awaited on an event loop, ``on_kill()``
awaited after a user action. Secrets come from a real Airflow variable (environment backend).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.httpserver import LocalServer, Reply

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CANARY = "trigger-canary-" + os.urandom(8).hex()


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture
def server(srv: LocalServer, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    srv.reset()
    monkeypatch.setenv("AIRFLOW_VAR_TRIGRUN_TRIGGER_CANARY", CANARY)
    return srv


def spec(server: LocalServer, **wait: Any) -> dict[str, Any]:
    return {"name": "webhook job", "target": "webhook",
            "request": {"url": f"{server.url}/hook",
                        "headers": {"Authorization": "secret://var/trigrun_trigger_canary"}},
            "wait": {"status_url": f"{server.url}/runs/{{run_id}}", "status_path": "state",
                     "run_id_path": "id", "cancel_url": f"{server.url}/runs/{{run_id}}/cancel",
                     **wait}}


def trigger(server: LocalServer, *, deadline: float = 30, poll: float = 0.2,
            **wait: Any) -> Any:
    from trigrun.airflow import TrigRunTrigger

    return TrigRunTrigger(spec=spec(server, **wait), run_id="r1",
                          end_time=time.time() + deadline, poll_interval=poll)


async def first_event(trig: Any) -> dict[str, Any]:
    event = await anext(trig.run())
    return dict(event.payload)


def test_transient_errors_are_retried_with_backoff(server: LocalServer) -> None:
    server.on("GET", "/runs/{run_id}", Reply(503), Reply(502), Reply(json={"state": "success"}))
    event = asyncio.run(first_event(trigger(server)))
    assert event["status"] == "success"
    assert event["run_id"] == "r1"
    polls = server.requests_to("/runs/r1")
    assert len(polls) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert gaps[0] >= 0.9  # backoff after a failed check: at least 1 s, then doubling
    assert gaps[1] >= 1.9
    # The secret was resolved (from an Airflow variable) and sent...
    assert polls[0].headers["authorization"] == CANARY


def test_a_definite_error_stops_at_once_without_a_hot_loop(server: LocalServer) -> None:
    server.on("GET", "/runs/{run_id}", Reply(403, json={"detail": "forbidden"}))
    event = asyncio.run(first_event(trigger(server)))
    assert event["status"] == "error"
    assert "403" in event["message"]
    time.sleep(0.5)
    assert len(server.requests_to("/runs/r1")) == 1


def test_own_deadline_times_out_and_cancels(server: LocalServer) -> None:
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "running"}))
    server.on("POST", "/runs/{run_id}/cancel", Reply(json={"ok": True}))
    trig = trigger(server, deadline=1.5, poll=0.3)
    deadline = time.monotonic() + (trig.end_time - time.time())
    event = asyncio.run(first_event(trig))
    assert event["status"] == "timeout"
    assert "cancel requested" in event["message"]
    (cancel,) = server.requests_to("/runs/r1/cancel", "POST")
    # The wait's polls, then the cancel's own status check (a run that ended is not cancelled).
    *polls, checked = server.requests_to("/runs/r1", "GET")
    assert polls[-1].at <= checked.at <= cancel.at
    # Polled until its deadline (however much of it the trigger's set-up took), the last
    # check at the deadline; slept between polls: never sooner than half an interval after
    # the last, and no more than the deadline's worth of them.
    assert polls[-1].at >= deadline - 0.05, (deadline, [p.at for p in polls])
    gaps = [b.at - a.at for a, b in itertools.pairwise(polls)]
    assert all(g >= 0.3 / 2 - 0.05 for g in gaps), gaps
    assert len(polls) <= 7


def test_unknown_status_is_an_error_event(server: LocalServer) -> None:
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "weird"}))
    event = asyncio.run(first_event(trigger(server)))
    assert event["status"] == "error"
    assert "unknown status 'weird'" in event["message"]


def test_failed_and_cancelled_runs(server: LocalServer) -> None:
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "failed"}))
    assert asyncio.run(first_event(trigger(server)))["status"] == "error"
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "cancelled"}))
    assert asyncio.run(first_event(trigger(server)))["status"] == "cancelled"


def test_on_kill_cancels_the_run_and_the_sensor_flavour_does_not(server: LocalServer) -> None:
    from trigrun.airflow import TrigRunTrigger

    server.on("GET", "/runs/{run_id}", Reply(json={"state": "running"}))
    server.on("POST", "/runs/{run_id}/cancel", Reply(json={"ok": True}))

    async def kill_after_a_poll(trig: Any) -> None:
        task = asyncio.ensure_future(first_event(trig))
        while not server.requests_to("/runs/r1", "GET"):
            await asyncio.sleep(0.05)
        task.cancel("user action")  # what the triggerer does, then it awaits on_kill()
        with pytest.raises(asyncio.CancelledError):
            await task
        await trig.on_kill()

    asyncio.run(kill_after_a_poll(trigger(server)))
    assert len(server.requests_to("/runs/r1/cancel", "POST")) == 1
    kwargs = trigger(server).serialize()[1]
    sensor_trigger = TrigRunTrigger(**{**kwargs, "cancel_on_kill": False})
    asyncio.run(kill_after_a_poll(sensor_trigger))
    assert len(server.requests_to("/runs/r1/cancel", "POST")) == 1


def test_triggers_on_one_loop_share_one_engine(server: LocalServer) -> None:
    from trigrun.airflow import triggers

    server.on("GET", "/runs/{run_id}", Reply(json={"state": "running"}),
              Reply(json={"state": "running"}), Reply(json={"state": "success"}))
    seen: list[Any] = []

    async def both() -> list[dict[str, Any]]:
        a, b = trigger(server), trigger(server)
        tasks = [asyncio.ensure_future(first_event(t)) for t in (a, b)]
        while len(server.requests_to("/runs/r1")) < 2:
            await asyncio.sleep(0.02)
        seen.append(triggers.shared_engine_count())
        seen.extend(s.engine for s in triggers._ENGINES.values())
        return list(await asyncio.gather(*tasks))

    events = asyncio.run(both())
    assert [e["status"] for e in events] == ["success", "success"]
    assert seen[0] == 1  # one engine (one connection pool) for both triggers
    assert triggers.shared_engine_count() == 0  # closed with its last trigger


def test_running_triggers_of_equal_kwargs_keep_one_spec_dict(server: LocalServer) -> None:
    """The triggerer builds each trigger from its own copy of the kwargs; running triggers
    keep one shared copy (fewer long-lived objects per deferred task), and serialize() still
    gives back what each was built from."""
    import copy

    server.on("GET", "/runs/{run_id}", Reply(json={"state": "success"}))
    a, b = trigger(server), trigger(server)
    b.spec = copy.deepcopy(a.spec)
    before = [t.serialize() for t in (a, b)]
    assert a.spec is not b.spec

    async def both() -> list[dict[str, Any]]:
        return list(await asyncio.gather(first_event(a), first_event(b)))

    assert [e["status"] for e in asyncio.run(both())] == ["success", "success"]
    assert a.spec is b.spec
    assert [t.serialize() for t in (a, b)] == before
    # A spec of other content is not merged into it.
    c = trigger(server, poll_interval_seconds=7)
    asyncio.run(first_event(c))
    assert c.spec is not a.spec
    assert c.spec["wait"]["poll_interval_seconds"] == 7


def test_secret_never_in_kwargs_repr_or_event(server: LocalServer) -> None:
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "success", "echo": CANARY}))
    trig = trigger(server)
    event = asyncio.run(first_event(trig))
    assert server.requests_to("/runs/r1")[0].headers["authorization"] == CANARY
    for text in (repr(trig), json.dumps(trig.serialize()), json.dumps(event)):
        assert CANARY not in text
    assert "secret://var/trigrun_trigger_canary" in json.dumps(trig.serialize())


def test_event_is_held_until_not_before(server: LocalServer) -> None:
    """A deferring task asks for this: Airflow 3.3.2 fails tasks whose trigger fires too soon."""
    from trigrun.airflow import TrigRunTrigger

    server.on("GET", "/runs/{run_id}", Reply(json={"state": "success"}))
    kwargs = trigger(server).serialize()[1]
    t0 = time.monotonic()
    held = TrigRunTrigger(**{**kwargs, "not_before": time.time() + 1.5})
    event = asyncio.run(first_event(held))
    assert event["status"] == "success"
    assert time.monotonic() - t0 >= 1.4
    assert len(server.requests_to("/runs/r1")) == 1  # held, not polling again


def test_invalid_spec_is_an_error_event_not_a_crash() -> None:
    from trigrun.airflow import TrigRunTrigger

    trig = TrigRunTrigger(spec={"name": "x"}, run_id="1", end_time=time.time() + 5,
                          poll_interval=1)
    event = asyncio.run(first_event(trig))
    assert event["status"] == "error"
    assert "invalid" in event["message"]


def test_task_log_gets_state_changes_not_every_poll(server: LocalServer,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # The webhook preset reads every pending value as "running": one state for four polls.
    states = ["queued", "running", "running", "running", "success"]
    server.on("GET", "/runs/{run_id}", *(Reply(json={"state": s}) for s in states))
    event = asyncio.run(first_event(trigger(server, poll=0.05)))
    assert event["status"] == "success"
    assert event["polls"] == len(states)
    out = capsys.readouterr().out
    info = [line for line in out.splitlines() if "[info" in line]
    polls = [line for line in info if "run r1: " in line]
    # The wait's description and the first poll's state share one INFO line; the repeats and
    # the end state (the resumed task logs the outcome) are DEBUG.
    assert len(polls) == 1, out
    assert "waiting for run r1 of job 'webhook job' (poll every 0.05s" in polls[0]
    assert "run r1: running (queued)" in polls[0]

    # A run already over at the first check: still one line saying what was waited for.
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "success"}))
    assert asyncio.run(first_event(trigger(server, poll=0.05)))["status"] == "success"
    out = capsys.readouterr().out
    polls = [line for line in out.splitlines() if "[info" in line and "run r1: " in line]
    assert len(polls) == 1, out
    assert "waiting for run r1" in polls[0]
    assert "run r1: success" in polls[0]
