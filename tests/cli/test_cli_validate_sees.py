"""``trigrun validate`` catches what a fire would refuse before sending, when it needs neither
a secret's value nor the network (issue 19): each case exits 1 naming job and field. Run as
``python -m trigrun`` runs it, in this process; no server anywhere."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Callable
from typing import Any

import pytest


def _job(request: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": "Bad", "request": {"url": "https://api.example.com/hook",
                                       **(request or {})}, **extra}


CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "crlf in a header value": (
        _job({"headers": {"X-Run": "a\r\nInjected: 1"}}), "request.headers",
        "CR, LF or NUL"),
    "invalid header name": (
        _job({"headers": {"Bad Name:": "v"}}), "request.headers", "not a valid HTTP header"),
    "static body over max_request_bytes": (
        _job({"body": {"rows": "x" * 200}}, max_request_bytes=100), "request.body",
        "over max_request_bytes=100"),
    "template syntax error": (
        _job({"body": {"d": "{{ ds "}}), "request.body.d", "template syntax error"),
    "undefined template variable": (
        _job({"body": {"d": "{{ sheduled_time }}"}}), "request.body.d", "sheduled_time"),
    "space in the URL's host": (
        _job({"url": "https://api example.com/hook"}), "request.url", "cannot be valid"),
    "NUL in the URL": (
        _job({"url": "https://api.example.com/ho\x00ok"}), "request.url", "control character"),
    "bad port in base_url": (
        {"name": "Bad", "target": {"type": "airflow", "base_url": "http://h:99999",
                                   "dag_id": "d"}}, "target.base_url", "cannot be valid"),
    "CR/LF in a header auth value": (
        _job(auth={"type": "header", "name": "X-Key", "value": "a\nb"}), "auth.value",
        "CR, LF or NUL"),
}


def trigrun_validate(path: str, capsys: pytest.CaptureFixture[str],
                     monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``python -m trigrun validate PATH``, in this process (as the module runs it)."""
    monkeypatch.setattr(sys, "argv", ["trigrun", "validate", path])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("trigrun", run_name="__main__", alter_sys=False)
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out + err


@pytest.mark.parametrize("case", sorted(CASES))
def test_validate_sees_it(case: str, jobs_file: Callable[..., str],
                          capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    job, field, why = CASES[case]
    code, text = trigrun_validate(jobs_file(json.dumps([job]), name="jobs.json"), capsys,
                                  monkeypatch)
    assert code == 1, text
    assert f"job 'Bad', field {field}" in text, text
    assert why in text, text
    assert "Traceback" not in text
