"""``trigrun fire`` against a real HTTP server on 127.0.0.1: dry run, execution log, --wait
progress, exit codes, and no secret value in any output."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun import Event
from trigrun._cli import Progress, main

CANARY = "canary-s3cr3t-7f2c9a"  # set as TRIGRUN_SECRET_HOOK_TOKEN; must never be printed


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGRUN_SECRET_HOOK_TOKEN", CANARY)


def webhook_job(server: LocalServer, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": "ML retrain",
        "request": {"url": f"{server.url}/hook", "method": "POST",
                    "headers": {"Authorization": "Bearer secret://hook-token"},
                    "body": {"model": "recs", "ds": "{{ ds }}"}, "timeout_seconds": 5},
        "retry_policy": {"max_attempts": 2, "initial_backoff_seconds": 0.01, "jitter": 0},
        "wait": {"status_url": f"{server.url}/runs/{{run_id}}", "run_id_path": "run.id",
                 "status_path": "state", "run_url_path": "url", "poll_interval_seconds": 0.02,
                 "timeout_seconds": 30},
    }
    job.update(extra)
    return job


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert CANARY not in out + err
    assert "Traceback" not in err
    return code, out, err


def states(*values: str) -> Callable[[Recorded], Reply]:
    """A status endpoint that walks through ``values`` (the last repeats)."""
    seen: list[str] = []

    def handler(req: Recorded) -> Reply:
        seen.append(req.params["run_id"])
        value = values[min(len(seen), len(values)) - 1]
        return Reply(json={"state": value, "url": f"https://ui.example/{req.params['run_id']}"})

    return handler


# --- dry run --------------------------------------------------------------------------------


@pytest.mark.usefixtures("secret_env")
def test_dry_run_sends_nothing_and_shows_references(
        capsys: pytest.CaptureFixture[str], server: LocalServer,
        jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(200, json={"run": {"id": "r1"}}))
    path = jobs_file(webhook_job(server, auth={"type": "header", "name": "X-Token",
                                               "value": "secret://hook-token"}))
    code, out, err = run(capsys, "fire", path, "--dry-run", "--scheduled-time",
                         "2026-03-08T02:30:00-05:00")
    assert (code, err) == (0, "")
    assert server.requests == []
    lines = out.splitlines()
    assert lines[0] == ("dry run: nothing is sent. Job 'ML retrain', target webhook, scheduled "
                        "time 2026-03-08T07:30:00+00:00")
    assert f"POST {server.url}/hook" in lines
    assert "Authorization: Bearer secret://hook-token" in lines
    assert "X-Token: secret://hook-token" in lines
    assert "Idempotency-Key: trigrun__2026-03-08T07:30:00+00:00__" in out
    assert '  "ds": "2026-03-08"' in lines  # templates rendered for the scheduled time
    assert "secret secret://hook-token <- $TRIGRUN_SECRET_HOOK_TOKEN (set)" in lines

    code, out, _ = run(capsys, "fire", path, "--dry-run", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["request"]["headers"]["Authorization"] == "Bearer secret://hook-token"
    assert shown["secrets"] == [{"reference": "secret://hook-token",
                                 "env": "TRIGRUN_SECRET_HOOK_TOKEN", "set": True}]
    assert server.requests == []


def test_dry_run_masks_literal_credentials_and_reports_missing_secrets(
        capsys: pytest.CaptureFixture[str], server: LocalServer,
        jobs_file: Callable[..., str]) -> None:
    job = webhook_job(server)
    job["request"]["headers"] = {"Authorization": "secret://not-set-anywhere",
                                 "X-Api-Key": "literal-key-0000"}
    code, out, _ = run(capsys, "fire", jobs_file(job), "--dry-run")
    assert code == 0
    assert "literal-key-0000" not in out
    assert "X-Api-Key: *** (a literal in the spec; use a secret:// reference)" in out
    assert ("secret secret://not-set-anywhere <- $TRIGRUN_SECRET_NOT_SET_ANYWHERE (NOT SET: a "
            "real fire stops here with exit code 3)") in out
    assert server.requests == []


# --- real fires -----------------------------------------------------------------------------


@pytest.mark.usefixtures("secret_env")
def test_fire_wait_json(capsys: pytest.CaptureFixture[str], server: LocalServer,
                        jobs_file: Callable[..., str]) -> None:
    # The server echoes the token back: the engine must redact it from the kept response.
    server.on("POST", "/hook", lambda req: Reply(201, json={
        "run": {"id": "run-42"}, "echo": req.headers["authorization"]}))
    server.on("GET", "/runs/{run_id}", states("queued", "running", "success"))
    code, out, err = run(capsys, "fire", jobs_file(webhook_job(server)), "--wait", "--json",
                         "--scheduled-time", "2026-06-01T09:00:00")
    assert code == 0, err
    log = json.loads(out)
    trigger, result = log["trigger"], log["run"]
    assert trigger["ok"] is True
    assert trigger["status"] == 201
    assert trigger["run_id"] == "run-42"
    assert trigger["response"]["echo"] == "Bearer ***"
    assert trigger["scheduled_time"] == "2026-06-01T09:00:00+00:00"  # a naive time, job in UTC
    assert [a["status_code"] for a in trigger["attempts"]] == [201]
    assert result["state"] == "success"
    assert result["polls"] == 3
    assert result["run_url"] == "https://ui.example/run-42"
    # What went over the wire: the real secret, once; then three status checks.
    [post] = server.requests_to("/hook")
    assert post.headers["authorization"] == f"Bearer {CANARY}"
    assert post.json() == {"model": "recs", "ds": "2026-06-01"}
    assert post.headers["idempotency-key"] == trigger["idempotency_key"]
    assert len(server.requests_to("/runs/run-42")) == 3
    # Progress: plain lines on a non-terminal stderr, fed by engine events.
    first, *polls = err.splitlines()
    assert re.fullmatch(r"trigrun: ML retrain: attempt 1: HTTP 201 \(\d+ ms\)", first)
    assert polls == [
        "trigrun: ML retrain: waiting for run run-42",
        "trigrun: ML retrain: run run-42: running (queued)",  # the webhook's running_values
        "trigrun: ML retrain: run run-42: running",
        "trigrun: ML retrain: run run-42: success",
    ]


@pytest.mark.usefixtures("secret_env")
def test_fire_wait_logs_state_changes_once_and_the_url_whole(
        capsys: pytest.CaptureFixture[str], server: LocalServer,
        jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(201, json={"run": {"id": "run-43"},
                                                "url": "https://ui.example/" + "r" * 150}))
    server.on("GET", "/runs/{run_id}", states("running", "running", "running", "success"))
    job = webhook_job(server)
    job["wait"]["run_url_path"] = "url"
    code, out, err = run(capsys, "fire", jobs_file(job), "--wait")
    assert code == 0, err
    assert len(server.requests_to("/runs/run-43")) == 4
    first, *rest = err.splitlines()
    assert re.fullmatch(r"trigrun: ML retrain: attempt 1: HTTP 201 \(\d+ ms\)", first)
    # Not a terminal: each new state once, however many polls repeated it.
    assert rest == ["trigrun: ML retrain: waiting for run run-43",
                    "  https://ui.example/" + "r" * 150,
                    "trigrun: ML retrain: run run-43: running",
                    "trigrun: ML retrain: run run-43: success"]
    lines = out.splitlines()
    assert lines[:4] == ["job:        ML retrain",
                         lines[1], "run id:     run-43",
                         "run url:    https://ui.example/" + "r" * 150]
    assert re.fullmatch(r"trigger:    OK, new run  \(HTTP 201, 1 attempt, \d+ ms\)", lines[1])
    assert lines[4].startswith("run:        SUCCESS  (4 status checks, ")
    assert "response" not in out  # only with --verbose


@pytest.mark.usefixtures("secret_env")
def test_fire_human_log_with_retry(capsys: pytest.CaptureFixture[str], server: LocalServer,
                                   jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(503, body="busy"), Reply(200, json={"run": {"id": "r7"}}))
    path = jobs_file(webhook_job(server))
    code, out, err = run(capsys, "fire", path)
    assert code == 0, err
    # The summary: status, attempts, duration, new run, its id; the attempts were logged on
    # stderr as they happened, each once; the response only with --verbose.
    lines = out.splitlines()
    assert lines[0] == "job:        ML retrain"
    assert lines[1].startswith("trigger:    OK, new run  (HTTP 200, 2 attempts, ")
    assert lines[2:] == ["run id:     r7"]
    assert [ln.split(" (")[0] for ln in err.splitlines()] == [
        "trigrun: ML retrain: attempt 1: HTTP 503",
        "trigrun: ML retrain: retrying in 0.0s after HTTP 503",
        "trigrun: ML retrain: attempt 2: HTTP 200"]
    assert len(server.requests_to("/hook")) == 2
    assert server.requests_to("/runs/r7") == []  # no --wait, no polling

    server.reset()
    server.on("POST", "/hook", Reply(503, body="busy"), Reply(200, json={"run": {"id": "r7"}}))
    code, out, err = run(capsys, "fire", path, "--verbose", "--scheduled-time",
                         "2026-06-01T09:00:00")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("trigger:    OK, new run  (HTTP 200, 2 attempts, ")
    assert lines[2].startswith("  attempt 1: HTTP 503 (")
    assert lines[3].startswith("  attempt 2 after 0.0 s: HTTP 200 (")
    assert "target:     webhook" in lines
    assert "scheduled:  2026-06-01T09:00:00+00:00" in lines
    assert "run id:     r7" in lines
    assert "response:" in lines
    assert '    "run": {' in lines


@pytest.mark.usefixtures("secret_env")
def test_trigger_failure_exits_3(capsys: pytest.CaptureFixture[str], server: LocalServer,
                                 jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(400, json={"detail": "bad conf"}))
    path = jobs_file(webhook_job(server))
    code, out, err = run(capsys, "fire", path, "--wait")
    assert code == 3
    assert "trigger:    FAILED  (HTTP 400, 1 attempt, " in out
    [line] = [ln for ln in err.splitlines() if ln.startswith("trigrun: error:")]
    assert line.startswith(f"trigrun: error: job 'ML retrain': trigger request to {server.url}"
                           "/hook failed: HTTP 400")
    assert server.requests_to("/runs/r1") == []

    server.reset()
    server.on("POST", "/hook", Reply(503))
    code, out, _ = run(capsys, "fire", path, "--json")
    assert code == 3
    assert [a["status_code"] for a in json.loads(out)["trigger"]["attempts"]] == [503, 503]


def test_missing_secret_exits_3_and_sends_nothing(capsys: pytest.CaptureFixture[str],
                                                  server: LocalServer,
                                                  jobs_file: Callable[..., str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIGRUN_SECRET_HOOK_TOKEN", raising=False)
    code, out, err = run(capsys, "fire", jobs_file(webhook_job(server)))
    assert (code, out) == (3, "")
    [line] = err.splitlines()
    assert line.startswith("trigrun: error: secret 'secret://hook-token' was not found for job "
                           "'ML retrain'")
    assert "nothing was sent" in line
    assert "TRIGRUN_SECRET_HOOK_TOKEN" in line
    assert server.requests == []


@pytest.mark.usefixtures("secret_env")
@pytest.mark.parametrize(("final", "code"), [("failed", 4), ("cancelled", 4), ("exploded", 4)])
def test_run_failure_exits_4(capsys: pytest.CaptureFixture[str], server: LocalServer,
                             jobs_file: Callable[..., str], final: str, code: int) -> None:
    server.on("POST", "/hook", Reply(200, json={"run": {"id": "r9"}}))
    server.on("GET", "/runs/{run_id}", states("running", final))
    got, out, err = run(capsys, "fire", jobs_file(webhook_job(server)), "--wait")
    assert got == code
    expected = "UNKNOWN" if final == "exploded" else final.upper()
    assert f"run:        {expected}  (2 status checks, " in out
    [line] = [ln for ln in err.splitlines() if ln.startswith("trigrun: error:")]
    assert "job 'ML retrain'" in line
    assert "r9" in line


@pytest.mark.usefixtures("secret_env")
def test_wait_timeout_exits_5(capsys: pytest.CaptureFixture[str], server: LocalServer,
                              jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(200, json={"run": {"id": "slow"}}))
    server.on("GET", "/runs/{run_id}", states("running"))
    code, out, err = run(capsys, "fire", jobs_file(webhook_job(server)), "--wait",
                         "--timeout", "0.3", "--poll-interval", "0.05", "--json")
    assert code == 5
    assert json.loads(out)["run"]["state"] == "timeout"
    assert "still going after the wait's deadline" in err
    assert len(server.requests_to("/runs/slow")) >= 1


@pytest.mark.usefixtures("secret_env")
def test_wait_without_run_id_exits_4(capsys: pytest.CaptureFixture[str], server: LocalServer,
                                     jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(202, body="accepted"))
    job = webhook_job(server, wait={"enabled": False})
    code, _, err = run(capsys, "fire", jobs_file(job), "--wait")
    assert code == 4
    assert "cannot wait: the trigger response named no run id" in err


def test_fire_usage_errors(capsys: pytest.CaptureFixture[str], server: LocalServer,
                           jobs_file: Callable[..., str]) -> None:
    path = jobs_file({"jobs": [webhook_job(server), webhook_job(server, name="other")]})
    code, _, err = run(capsys, "fire", path)
    assert code == 2
    assert "holds 2 jobs; name one with --job ('ML retrain', 'other')" in err
    code, _, err = run(capsys, "fire", path, "--job", "third")
    assert code == 2
    code, _, err = run(capsys, "fire", path, "--job", "other", "--timeout", "-1")
    assert code == 2
    assert server.requests == []


# --- progress display -----------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    stream = _Tty()
    progress = Progress(stream, "job", sleep=sleep, clock=lambda: now[0], width=200)
    progress.event(Event("poll", "job", "run r1: running (running)"))
    progress.sleep(2.5)
    progress.event(Event("poll", "job", "run r1: success (success)"))
    progress.close()
    text = stream.getvalue()
    assert slept == [1.0, 1.0, 0.5]
    assert text.count("\n") == 1
    assert text.endswith("\n")
    frames = text.rstrip("\n").split("\r\x1b[K")[1:]
    assert frames == [
        "[   0.0s] job: run r1: running (running)",
        "[   0.0s] job: run r1: running (running) (next in 3s)",
        "[   1.0s] job: run r1: running (running) (next in 2s)",
        "[   2.0s] job: run r1: running (running) (next in 1s)",
        "[   2.5s] job: run r1: success (success)",
    ]


# --- a real process -------------------------------------------------------------------------


def test_python_dash_m_trigrun_fire_wait(server: LocalServer,
                                         jobs_file: Callable[..., str]) -> None:
    server.on("POST", "/hook", Reply(200, json={"run": {"id": "p1"}}))
    server.on("GET", "/runs/{run_id}", states("running", "success"))
    path = jobs_file(webhook_job(server))
    env = {**os.environ, "TRIGRUN_SECRET_HOOK_TOKEN": CANARY}
    proc = subprocess.run([sys.executable, "-m", "trigrun", "fire", path, "--wait", "--json"],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"]["state"] == "success"
    assert CANARY not in proc.stdout + proc.stderr
    assert server.requests_to("/hook")[0].headers["authorization"] == f"Bearer {CANARY}"


@pytest.mark.usefixtures("secret_env")
def test_urls_are_osc8_hyperlinks_when_the_terminal_renders_them(
        capsys: pytest.CaptureFixture[str], server: LocalServer,
        jobs_file: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://ui.example/runs/" + "u" * 120
    server.on("POST", "/hook", Reply(200, json={"run": {"id": "r5"}, "url": url}))
    job = webhook_job(server)
    job["wait"]["run_url_path"] = "url"
    monkeypatch.setenv("TRIGRUN_HYPERLINKS", "1")
    code, out, _ = run(capsys, "fire", jobs_file(job))
    assert code == 0
    # The link's target and its text are the whole URL.
    assert f"run url:    \x1b]8;;{url}\x1b\\{url}\x1b]8;;\x1b\\" in out.splitlines()
    monkeypatch.setenv("TRIGRUN_HYPERLINKS", "0")
    code, out, _ = run(capsys, "fire", jobs_file(job))
    assert f"run url:    {url}" in out.splitlines()
    assert "\x1b" not in out


@pytest.mark.parametrize("cancel", [False, True], ids=["keep", "cancel-on-interrupt"])
def test_ctrl_c_while_waiting_names_the_run_or_cancels_it_once(
        server: LocalServer, jobs_file: Callable[..., str], cancel: bool) -> None:
    import signal
    import time

    server.on("POST", "/hook", Reply(200, json={"run": {"id": "p9"}}))
    server.on("GET", "/runs/{run_id}", Reply(json={"state": "running",
                                                   "url": "https://ui.example/p9"}))
    server.on("POST", "/runs/{run_id}/cancel", Reply(202, json={}))
    job = webhook_job(server)
    job["wait"].update(cancel_url=f"{server.url}/runs/{{run_id}}/cancel",
                       poll_interval_seconds=0.2)
    argv = [sys.executable, "-m", "trigrun", "fire", jobs_file(job), "--wait"]
    proc = subprocess.Popen(argv + (["--cancel-on-interrupt"] if cancel else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TRIGRUN_SECRET_HOOK_TOKEN": CANARY})
    try:
        deadline = time.monotonic() + 60
        while len(server.requests_to("/runs/p9")) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run was never polled"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert CANARY not in out + err
    assert "run id:     p9" in out.splitlines()  # the summary of the fire
    lines = err.splitlines()
    assert ("  ML retrain: run p9" + (" (cancel requested)" if cancel else "")) in lines
    assert len(server.requests_to("/runs/p9/cancel")) == (1 if cancel else 0)


@pytest.mark.usefixtures("secret_env")
def test_reply_text_reaches_the_terminal_without_control_characters(
        capsys: pytest.CaptureFixture[str], server: LocalServer,
        jobs_file: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> None:
    # A target's reply is untrusted: escape sequences in its run id, URL or body would
    # drive the terminal (clear it, set its title, plant a link). They are printed without.
    url = "https://ui.example/runs/\x1b]8;;https://evil.example\x1b\\r7\x9b2J"
    server.on("POST", "/hook", Reply(200, json={
        "run": {"id": "r7\x1b]0;pwned\x07"}, "url": url, "note": "\x1b[2Jcleared"}))
    job = webhook_job(server)
    job["wait"]["run_url_path"] = "url"
    monkeypatch.setenv("TRIGRUN_HYPERLINKS", "0")
    code, out, err = run(capsys, "fire", jobs_file(job), "--verbose")
    assert code == 0, err
    for stream in (out, err):
        assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", stream), stream
    lines = out.splitlines()
    assert "run id:     r7]0;pwned" in lines
    assert "run url:    https://ui.example/runs/]8;;https://evil.example\\r72J" in lines
