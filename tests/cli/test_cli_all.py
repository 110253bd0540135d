"""``trigrun fire FILE --all [--wait]`` against a real HTTP server on 127.0.0.1: every job
fired through ``run_many``, the live table, the end states, the exit code; the CLI as the
upstream of the runs it starts."""

from __future__ import annotations

import io
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.httpserver import LocalServer, Recorded, Reply
from trigrun import JobRun
from trigrun._cli import Board, main
from trigrun._results import TriggerResult

pytestmark = pytest.mark.integration


def hook_job(server: LocalServer, name: str, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": name,
        "request": {"url": f"{server.url}/jobs/{name}", "timeout_seconds": 5},
        "retry_policy": {"max_attempts": 1},
        "wait": {"status_url": f"{server.url}/runs/{{run_id}}", "run_id_path": "id",
                 "status_path": "state", "run_url_path": "url",
                 "poll_interval_seconds": 0.02, "timeout_seconds": 30},
    }
    job.update(extra)
    return job


class Runs:
    """Runs that end on their second status check, as ``ends[name]`` says (default success)."""

    def __init__(self, server: LocalServer, ends: dict[str, str] | None = None) -> None:
        self.ends = ends or {}
        self.polls: dict[str, int] = {}
        self.server = server
        server.on("POST", "/jobs/{name}", lambda r: Reply(200, json={
            "id": r.params["name"], "url": f"{server.url}/ui/{r.params['name']}"}))
        server.on("GET", "/runs/{id}", self.status)

    def status(self, req: Recorded) -> Reply:
        rid = req.params["id"]
        n = self.polls[rid] = self.polls.get(rid, 0) + 1
        state = "running" if n < 2 else self.ends.get(rid, "success")
        return Reply(json={"state": state})


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_all_wait_lists_every_job_with_its_end_state(
        server: LocalServer, jobs_file: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    runs = Runs(server)
    path = jobs_file({"jobs": [hook_job(server, n) for n in ("extract", "transform", "load")]})
    code, out, err = run(capsys, "fire", path, "--all", "--wait")
    assert code == 0, err
    lines = out.splitlines()
    # One line per job (state, duration, the name last), its run's URL whole on the next.
    for name in ("extract", "transform", "load"):
        (i,) = [i for i, ln in enumerate(lines) if ln.endswith(f"s  {name}")]
        assert re.fullmatch(rf"SUCCESS\s+\d+\.\ds  {name}", lines[i])
        assert lines[i + 1] == f"    {server.url}/ui/{name}"
    assert lines[-1] == "3 of 3 jobs ok"
    assert len(lines) == 7
    assert all(runs.polls[n] == 2 for n in ("extract", "transform", "load"))
    # Not a terminal: the table's changes are appended lines on stderr, in order per job,
    # each state once.
    for name in ("extract", "transform", "load"):
        mine = [ln.split()[2] for ln in err.splitlines() if ln.startswith(f"trigrun: {name}: ")]
        assert mine == ["firing", "waiting", "running", "SUCCESS"]
        assert err.count(f"trigrun: {name}: SUCCESS") == 1
    assert "\x1b[" not in err


def test_all_wait_exits_non_zero_when_one_run_failed(
        server: LocalServer, jobs_file: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    Runs(server, ends={"transform": "failed"})
    path = jobs_file({"jobs": [hook_job(server, n) for n in ("extract", "transform", "load")]})
    code, out, err = run(capsys, "fire", path, "--all", "--wait")
    assert code == 4  # the documented exit code of a failed downstream run
    states = {ln.split()[-1]: ln.split()[0] for ln in out.splitlines()[:-1]
              if not ln.startswith(" ")}
    assert states == {"extract": "SUCCESS", "transform": "FAILED", "load": "SUCCESS"}
    assert out.splitlines()[-1] == "2 of 3 jobs ok"
    assert "trigrun: error:" in err


def test_all_exit_codes_a_failed_trigger_comes_first(
        server: LocalServer, jobs_file: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    Runs(server, ends={"b": "failed"})
    server.on("POST", "/jobs/a", Reply(400, json={"detail": "bad"}))
    path = jobs_file({"jobs": [hook_job(server, "a"), hook_job(server, "b")]})
    code, out, _ = run(capsys, "fire", path, "--all", "--wait")
    assert code == 3
    assert "TRIGGER FAILED" in out


def test_all_without_wait_fires_only_and_skips_disabled_jobs(
        server: LocalServer, jobs_file: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    runs = Runs(server)
    path = jobs_file({"jobs": [hook_job(server, "a"), hook_job(server, "b", enabled=False)]})
    code, out, err = run(capsys, "fire", path, "--all", "--json")
    assert code == 0, err
    (only,) = json.loads(out)
    assert only["trigger"]["job"] == "a"
    assert only["trigger"]["run_id"] == "a"
    assert only["run"] is None
    assert runs.polls == {}
    assert len(server.requests_to("/jobs/a")) == 1
    assert server.requests_to("/jobs/b") == []
    assert "job 'b' is disabled" in err


def test_all_honours_concurrency_and_queues(
        server: LocalServer, jobs_file: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    lock = threading.Lock()
    flying: list[int] = [0, 0]
    two = threading.Event()  # two requests were in flight at once

    def slow(req: Recorded) -> Reply:
        with lock:
            flying[0] += 1
            flying[1] = max(flying[1], flying[0])
            if flying[0] >= 2:
                two.set()
        # Held until a second one has arrived, however slow the machine is to send it, then a
        # little more: a third that the queue let through would be in flight by then.
        if not two.wait(30):
            two.set()  # never two at once: the check below fails, without more waiting
        time.sleep(0.05)
        with lock:
            flying[0] -= 1
        return Reply(200, json={"id": "x"})

    server.on("POST", "/jobs/{name}", slow)
    q = {"name": "warehouse", "concurrency_limit": 2}
    jobs = [hook_job(server, f"j{n}", queue=q, wait={"enabled": False},
                     request={"url": f"{server.url}/jobs/j{n}", "timeout_seconds": 60})
            for n in range(6)]
    code, _, err = run(capsys, "fire", jobs_file({"jobs": jobs}), "--all", "--concurrency", "5")
    assert code == 0, err
    assert flying[1] == 2


def test_the_cli_names_itself_as_the_upstream(
        server: LocalServer, jobs_file: Callable[..., str],
        capsys: pytest.CaptureFixture[str]) -> None:
    server.on("POST", "/api/v2/dags/etl/dagRuns",
              lambda r: Reply(200, json={"dag_run_id": r.json()["dag_run_id"], "state": "queued"}))
    job = {"name": "etl", "wait": {"enabled": False},
           "target": {"type": "airflow", "base_url": server.url, "dag_id": "etl"}}
    path = jobs_file({"jobs": [job]})
    assert run(capsys, "fire", path)[0] == 0
    assert run(capsys, "fire", path, "--all")[0] == 0
    notes = [r.json()["note"] for r in server.requests_to("/api/v2/dags/etl/dagRuns")]
    assert notes == [f"Triggered by trigrun CLI on {socket.gethostname()}"] * 2


def test_all_and_job_together_is_a_usage_error(
        jobs_file: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    path = jobs_file({"jobs": [{"name": "a", "request": {"url": "http://127.0.0.1:9/x"}}]})
    code, _, err = run(capsys, "fire", path, "--all", "--job", "a")
    assert code == 2
    assert "--job NAME or --all" in err
    code, _, err = run(capsys, "fire", path, "--concurrency", "3")
    assert code == 2
    assert "--concurrency goes with --all" in err


def test_the_terminal_table_is_redrawn_in_place() -> None:
    stream = io.StringIO()
    now = [100.0]
    board = Board(stream, ["first", "second"], tty=True, clock=lambda: now[0], width=80)
    board.progress(0, None, "firing")
    now[0] += 1.5
    trig = TriggerResult(job="first", ok=True, status_code=200, duration_ms=5, attempts=(),
                         response=None, run_id="r1", run_url="http://ui/r1",
                         idempotency_key=None, scheduled_time=None, target="webhook")
    board.progress(0, JobRun(trig), "done")
    text = stream.getvalue()
    first, second = text.split("\x1b[2A")  # the second draw moves up over the first
    assert first == f"\r\x1b[J{'firing':<14} {'0.0s':>8}  first\n{'pending':<14} {'':>8}  second\n"
    # The URL on its own line, whole; the row above it keeps its columns.
    assert second == (f"\r\x1b[J{'FIRED':<14} {'1.5s':>8}  first\n    http://ui/r1\n"
                      f"{'pending':<14} {'':>8}  second\n")
    long_url = "http://ui/" + "x" * 150
    trig = TriggerResult(job="second", ok=True, status_code=200, duration_ms=5, attempts=(),
                         response=None, run_id="r2", run_url=long_url,
                         idempotency_key=None, scheduled_time=None, target="webhook")
    board.progress(1, JobRun(trig), "waiting")
    third = stream.getvalue()[len(text):]
    assert third.startswith("\x1b[3A")  # up over the three rows the second draw took
    assert f"    {long_url}\n" in third  # never cut at the terminal's 80 columns
    board.draw()
    assert stream.getvalue()[len(text) + len(third):].startswith("\x1b[6A")  # 1 + 1 + 1 + 3


def test_dry_run_shows_the_upstream_and_a_refused_body(
        jobs_file: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    airflow = {"name": "etl", "target": {"type": "airflow", "base_url": "http://127.0.0.1:9",
                                         "dag_id": "etl"}}
    # A rendered body (a static one over the limit is refused when the file is loaded).
    big = {"name": "big", "max_request_bytes": 100, "params": {"rows": "x" * 200},
           "request": {"url": "http://127.0.0.1:9/hook", "body": {"rows": "{{ params.rows }}"}}}
    code, out, _ = run(capsys, "fire", jobs_file({"jobs": [airflow, big]}), "--all",
                       "--dry-run", "--json")
    assert code == 0
    first, second = json.loads("[" + out.replace("}\n{", "},\n{") + "]")
    assert first["request"]["body"]["note"] == f"Triggered by trigrun CLI on {socket.gethostname()}"
    assert first["refused"] is None
    assert "over max_request_bytes=100" in second["refused"]
    off = dict(airflow, link_upstream=False)
    code, out, _ = run(capsys, "fire", jobs_file([off]), "--dry-run")
    assert code == 0
    assert "note" not in out
    assert "trigrun CLI" not in out


# --- Ctrl-C ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cancel", [False, True], ids=["keep", "cancel-on-interrupt"])
def test_ctrl_c_in_all_wait_names_every_run_that_keeps_going(
        server: LocalServer, jobs_file: Callable[..., str], cancel: bool) -> None:
    import os
    import signal
    import subprocess
    import sys

    names = ("extract", "transform", "load")

    def url(name: str) -> str:  # longer than any terminal line: it must come out whole
        return f"{server.url}/ui/{name}/" + "x" * 150

    server.on("POST", "/jobs/{name}", lambda r: Reply(200, json={
        "id": r.params["name"], "url": url(r.params["name"])}))
    server.on("GET", "/runs/{id}", Reply(json={"state": "running"}))  # they never end
    server.on("POST", "/runs/{id}/cancel", Reply(202, json={"cancelled": True}))
    jobs = [hook_job(server, n) for n in names]
    for job in jobs:
        job["wait"]["cancel_url"] = f"{server.url}/runs/{{run_id}}/cancel"
        job["wait"]["poll_interval_seconds"] = 0.2
    argv = [sys.executable, "-m", "trigrun", "fire", jobs_file({"jobs": jobs}), "--all", "--wait"]
    proc = subprocess.Popen(argv + (["--cancel-on-interrupt"] if cancel else []),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TRIGRUN_HYPERLINKS": "0"})
    try:
        deadline = time.monotonic() + 60
        while not all(server.requests_to(f"/runs/{n}") for n in names):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the runs were never polled"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert "jobs ok" not in out  # no summary: the runs did not end
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.splitlines()
    for n in names:
        i = lines.index(f"  {n}: run {n}" + (" (cancel requested)" if cancel else ""))
        assert lines[i + 1] == f"    {url(n)}"
    cancels = sorted(r.path for r in server.requests if r.method == "POST"
                     and r.path.startswith("/runs/"))
    if cancel:
        assert "interrupted: stopped waiting; cancelling each run:" in err
        assert cancels == sorted(f"/runs/{n}/cancel" for n in names)  # one each
    else:
        assert "interrupted: stopped waiting; 3 runs keep going" in err
        assert cancels == []
