"""``trigrun fire`` keeps credentials with their origin (issue 19): a job whose URL's host is
a template sends its token only to an origin on its ``allowed_origins``. Two local listeners;
the CLI runs as a user runs it (``python -m trigrun``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.httpserver import LocalServer, Reply

TOKEN = "cli-origin-token-2d9b4c"
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def listeners() -> Iterator[tuple[LocalServer, LocalServer]]:
    with LocalServer() as a, LocalServer() as b:
        for srv in (a, b):
            srv.on("POST", "/hook", Reply(json={"ok": True}))
        yield a, b


def fire(path: str, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIGRUN_SECRET_HOOK_TOKEN": TOKEN,
           "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "trigrun", "fire", path, *flags], env=env,
                          capture_output=True, text=True, timeout=120)


def job(base: str, **extra: object) -> dict[str, object]:
    return {"name": "Hook", "params": {"base": base},
            "request": {"url": "{{ params.base }}/hook",
                        "headers": {"Authorization": "Bearer secret://hook-token"}},
            "retry_policy": {"max_attempts": 1}, "wait": {"enabled": False}, **extra}


def test_a_templated_host_is_refused_before_anything_is_sent(
        listeners: tuple[LocalServer, LocalServer], jobs_file: Callable[..., str]) -> None:
    a, b = listeners
    got = fire(jobs_file(job(b.url)))
    assert got.returncode != 0
    assert b.requests == []
    assert a.requests == []
    assert "job 'Hook', field request.url" in got.stderr + got.stdout
    assert b.url in got.stderr + got.stdout
    assert "allowed_origins" in got.stderr + got.stdout
    assert TOKEN not in got.stderr + got.stdout


def test_an_allowed_origin_receives_the_token(
        listeners: tuple[LocalServer, LocalServer], jobs_file: Callable[..., str]) -> None:
    a, b = listeners
    got = fire(jobs_file(job(b.url, allowed_origins=[b.url])))
    assert got.returncode == 0, got.stderr
    (sent,) = b.requests_to("/hook")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert a.requests == []


def test_a_dry_run_reports_the_refusal_a_real_fire_makes(
        listeners: tuple[LocalServer, LocalServer], jobs_file: Callable[..., str]) -> None:
    # --dry-run applies the same origin rule: it does not show as sendable what a real
    # fire refuses, and exits as the real fire does.
    a, b = listeners
    path = jobs_file(job(b.url))
    real = fire(path)
    dry = fire(path, "--dry-run")
    assert dry.returncode == real.returncode == 1, dry.stderr
    assert "REFUSED: job 'Hook', field request.url" in dry.stdout
    assert "allowed_origins" in dry.stdout
    as_json = fire(path, "--dry-run", "--json")
    assert as_json.returncode == 1
    assert "field request.url" in json.loads(as_json.stdout)["refused"]
    ok = fire(jobs_file(job(b.url, allowed_origins=[b.url])), "--dry-run")
    assert ok.returncode == 0, ok.stdout
    assert "REFUSED" not in ok.stdout
    assert TOKEN not in dry.stdout + dry.stderr + as_json.stdout
    assert a.requests == []
    assert b.requests == []
