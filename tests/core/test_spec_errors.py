"""``JobSpec.model_validate`` gives the same clear error as ``load_jobs``: job, field, fix."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pydantic
import pytest

import trigrun

REQUEST = {"url": "https://hooks.example.com/run"}


def invalid(obj: dict[str, Any]) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as err:
        trigrun.JobSpec.model_validate(obj)
    return err.value


def test_model_validate_raises_a_spec_error_that_is_the_pydantic_error() -> None:
    obj = {"name": "nightly", "request": REQUEST, "retry_policy": {"max_attempts": 0}}
    exc = invalid(obj)
    assert isinstance(exc, trigrun.SpecError)
    assert isinstance(exc, trigrun.TrigRunError)
    assert str(exc) == ("job 'nightly', field retry_policy.max_attempts: Input should be "
                        "greater than or equal to 1 (use a larger number)")
    assert exc.problems == [str(exc)]  # type: ignore[attr-defined]
    assert "errors.pydantic.dev" not in str(exc) + repr(exc)
    # pydantic's side is unchanged for code that reads it.
    (detail,) = exc.errors()
    assert detail["loc"] == ("retry_policy", "max_attempts")
    assert detail["type"] == "greater_than_equal"
    assert exc.error_count() == 1
    assert exc.title == "JobSpec"


def test_model_validate_and_load_jobs_say_the_same(tmp_path: Path) -> None:
    obj = {"name": "nightly", "request": REQUEST, "auth": {"type": "bearer"}}
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([obj]))
    with pytest.raises(trigrun.SpecError) as loaded:
        trigrun.load_jobs(path)
    exc = invalid(obj)
    assert loaded.value.problems == [f"{path}: {exc}"]


@pytest.mark.parametrize(("auth", "field"), [
    ({"type": "bearer"}, "auth.token"),
    ({"type": "basic", "username": "u"}, "auth.password"),
    ({"type": "header", "name": "X-Key"}, "auth.value"),
    ({"type": "airflow_password", "username": "u"}, "auth.password"),
])
def test_union_fields_are_named_as_written(auth: dict[str, Any], field: str) -> None:
    exc = invalid({"name": "j", "request": REQUEST, "auth": auth})
    assert f"field {field}: Field required" in str(exc)
    assert f"auth.{auth['type']}." not in str(exc)


def test_a_schedule_given_as_a_string_is_shown_as_a_mapping() -> None:
    exc = invalid({"name": "nightly", "schedule": "0 1 * * *", "request": REQUEST})
    assert str(exc) == ("job 'nightly', field schedule: a schedule is a mapping, not a str; "
                        'write it as schedule: {"cron": "0 1 * * *", "timezone": "UTC"}')


def test_input_values_are_not_shown() -> None:
    # A literal token in the wrong place must not be echoed (pydantic prints input_value).
    exc = invalid({"name": "j", "request": REQUEST,
                   "auth": {"type": "bearer", "token": "s3cr3t-token", "extra": "s3cr3t-token"}})
    assert "s3cr3t-token" not in str(exc)
    assert "s3cr3t-token" not in repr(exc)


def test_model_validate_json_too() -> None:
    with pytest.raises(trigrun.SpecError) as err:
        trigrun.JobSpec.model_validate_json(json.dumps({"name": "j", "request": {"url": 5}}))
    assert isinstance(err.value, pydantic.ValidationError)
    assert str(err.value).startswith("job 'j', field request.url: ")


def test_the_error_pickles_with_its_message() -> None:
    exc = invalid({"name": "j", "request": REQUEST, "auth": {"type": "bearer"}})
    again = pickle.loads(pickle.dumps(exc))
    assert isinstance(again, trigrun.SpecError)
    assert str(again) == str(exc)
