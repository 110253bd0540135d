"""The JSON Schema of a jobs file, generated from the pydantic models.

Editors use it for completion and checks while typing, e.g. with the YAML language server::

    # yaml-language-server: $schema=./trigrun.schema.json

The schema checks shapes and field names; rules that span fields (``kind: cron`` needs
``schedule.cron``, a valid cron expression, one of ``request`` or a short-form ``target``) are
``trigrun validate``'s job.
"""

from __future__ import annotations

import json
from typing import Any, get_args

from ._models import HttpMethod, JobSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" for c in word)


def _loosen_method(defs: dict[str, Any]) -> None:
    """The model upper-cases ``method`` before checking it, so ``post`` is valid input too."""
    req = defs.get("RequestSpec", {}).get("properties", {})
    if "method" not in req:
        return
    names = list(get_args(HttpMethod))
    pattern = "^(" + "|".join(_any_case(n) for n in names) + ")$"
    method = req["method"]
    req["method"] = {
        "anyOf": [{"enum": names}, {"type": "string", "pattern": pattern}],
        "default": method.get("default", "POST"),
        "title": method.get("title", "Method"),
        "description": "HTTP method (any case).",
    }


def jobs_file_schema() -> dict[str, Any]:
    """A schema for a jobs file: one job, a list of jobs, or ``{"jobs": [...]}``."""
    job = JobSpec.model_json_schema(ref_template="#/$defs/{model}", mode="validation")
    defs: dict[str, Any] = job.pop("$defs", {})
    defs["JobSpec"] = job
    _loosen_method(defs)
    ref = {"$ref": "#/$defs/JobSpec"}
    jobs = {"type": "array", "items": ref, "minItems": 1}
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "trigrun jobs file",
        "description": "One job, a list of jobs, or {\"jobs\": [...]} in the TrigRun job-spec "
                       "format. Generated from trigrun's models by `trigrun schema`.",
        # if/then/else rather than anyOf, so an editor reports the error of the form used.
        "if": {"type": "array"},
        "then": jobs,
        "else": {
            "if": {"type": "object", "required": ["jobs"], "not": {"required": ["name"]}},
            "then": {"type": "object", "properties": {"jobs": jobs}, "required": ["jobs"],
                     "additionalProperties": False},
            "else": ref,
        },
        "$defs": defs,
    }


def jobs_file_schema_json(indent: int = 2) -> str:
    return json.dumps(jobs_file_schema(), indent=indent, sort_keys=False) + "\n"
