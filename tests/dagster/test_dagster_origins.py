"""Credentials stay with their origin in Dagster (issue 19): a spec whose URL takes its host
from run config (``params``) must not send its ``secret://`` token elsewhere. Real Dagster
(``materialize``), two local listeners: A is the spec's own host, B one the launcher picks."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from tests.helpers.httpserver import LocalServer, Reply
from trigrun.dagster import TrigRunResource, build_trigrun_asset

TOKEN = "dagster-origin-token-6e1f"


@pytest.fixture
def servers() -> Iterator[tuple[LocalServer, LocalServer]]:
    with LocalServer() as a, LocalServer() as b:
        for srv in (a, b):
            srv.on("POST", "/hook", Reply(json={"ok": True}))
        yield a, b


def _asset(extra: dict[str, object] | None = None) -> dg.AssetsDefinition:
    return build_trigrun_asset({
        "name": "Origin bound", "request": {
            "url": "{{ params.base }}/hook",
            "headers": {"Authorization": "Bearer secret://tok"}},
        "wait": {"enabled": False}, "retry_policy": {"max_attempts": 1}, **(extra or {})})


def _run(asset: dg.AssetsDefinition, base: str, **resource: object) -> dg.ExecuteInProcessResult:
    op = asset.op.name
    return dg.materialize(
        [asset], resources={"trigrun": TrigRunResource(secrets={"tok": TOKEN}, **resource)},
        run_config={"ops": {op: {"config": {"params": {"base": base}}}}},
        raise_on_error=False)


def test_run_config_cannot_send_the_token_to_another_origin(
        servers: tuple[LocalServer, LocalServer], capfd: pytest.CaptureFixture[str]) -> None:
    a, b = servers
    result = _run(_asset(), b.url)
    assert not result.success
    assert b.requests == []
    assert a.requests == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.error)
    assert "field request.url" in text
    assert b.url in text
    assert "allowed_origins" in text
    out, err = capfd.readouterr()
    assert TOKEN not in text + out + err


def test_an_origin_the_resource_or_the_spec_allows_works(
        servers: tuple[LocalServer, LocalServer]) -> None:
    a, b = servers
    assert _run(_asset(), b.url, allowed_origins=[b.url]).success
    assert _run(_asset({"allowed_origins": [a.url]}), a.url).success
    assert [r.headers["authorization"] for r in b.requests + a.requests] == [
        f"Bearer {TOKEN}"] * 2


def test_a_literal_host_with_templated_path_needs_no_list(
        servers: tuple[LocalServer, LocalServer]) -> None:
    a, _ = servers
    asset = build_trigrun_asset({
        "name": "Literal host", "request": {
            "url": a.url + "/{{ params.path }}",
            "headers": {"Authorization": "Bearer secret://tok"}},
        "wait": {"enabled": False}})
    result = dg.materialize(
        [asset], resources={"trigrun": TrigRunResource(secrets={"tok": TOKEN})},
        run_config={"ops": {asset.op.name: {"config": {"params": {"path": "hook"}}}}})
    assert result.success
    (sent,) = a.requests_to("/hook")
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
