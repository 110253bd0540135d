"""The targets' contracts, and the check every fake runs on each request and reply.

A fake (tests/helpers/fakes.py) mounts its routes through ``guard``: a request that breaks the
target's contract gets HTTP 400 and is recorded, and a reply of the fake's own that breaks it
is recorded too; ``drain()`` hands the records to the autouse fixture in tests/conftest.py,
which fails the test. OpenAPI contracts are checked with openapi-core, Dagster's GraphQL
schema with graphql-core (the query is validated, its variables coerced, and the fake's reply
executed against the schema). The contracts live in tests/contracts/ (see its generator,
scripts/gen_contracts.py).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .httpserver import Recorded, Reply

__all__ = ["GraphQLContract", "OpenAPIContract", "contract", "drain", "guard"]

CONTRACTS = Path(__file__).resolve().parent.parent / "contracts"

_lock = threading.Lock()
_violations: list[str] = []


def record(message: str) -> None:
    with _lock:
        _violations.append(message)


def drain() -> list[str]:
    """The violations seen since the last call (and forget them)."""
    with _lock:
        found = list(_violations)
        _violations.clear()
    return found


def _load(name: str) -> Any:
    path = CONTRACTS / name
    text = path.read_text()
    if name.endswith(".json"):
        return json.loads(text)
    import yaml

    return yaml.safe_load(text)


class OpenAPIContract:
    """An OpenAPI document; ``prefix`` is where the fake mounts it (Prefect's ``/api``)."""

    def __init__(self, name: str, prefix: str = "") -> None:
        from openapi_core import OpenAPI

        self.name = name
        self.prefix = prefix
        self.doc = _load(name)
        self.api = OpenAPI.from_dict(self.doc)

    def _request(self, req: Recorded, base_url: str) -> Any:
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
        from werkzeug.test import EnvironBuilder

        path = req.path.removeprefix(self.prefix) if self.prefix else req.path
        query = req.target.split("?", 1)[1] if "?" in req.target else ""
        headers = [(k, v) for k, v in req.headers.items()
                   if k not in ("content-length", "transfer-encoding")]
        builder = EnvironBuilder(path=path, base_url=base_url, method=req.method,
                                 query_string=query, headers=headers, data=req.body)
        try:
            return WerkzeugOpenAPIRequest(builder.get_request())
        finally:
            builder.close()

    def check_request(self, req: Recorded, base_url: str) -> str | None:
        try:
            self.api.validate_request(self._request(req, base_url))
        except Exception as exc:
            return _explain(exc)
        return None

    def check_reply(self, req: Recorded, base_url: str, reply: Reply) -> str | None:
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
        from werkzeug.wrappers import Response

        # Only the statuses the contract describes (an error a fake makes up for a test, e.g.
        # a 404, has no schema to hold it to).
        path = req.path.removeprefix(self.prefix) if self.prefix else req.path
        if not self._documents(path, req.method, reply.status):
            return None
        ctype = next((v for k, v in reply.headers.items() if k.lower() == "content-type"),
                     "application/json")
        resp = Response(reply.payload(), status=reply.status, content_type=ctype)
        try:
            self.api.validate_response(self._request(req, base_url),
                                       WerkzeugOpenAPIResponse(resp))
        except Exception as exc:
            return _explain(exc)
        return None

    def _documents(self, path: str, method: str, status: int) -> bool:
        for template, item in self.doc["paths"].items():
            if _matches(template, path):
                op = item.get(method.lower()) or {}
                return str(status) in (op.get("responses") or {})
        return False


def _matches(template: str, path: str) -> bool:
    a, b = template.strip("/").split("/"), path.strip("/").split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


def _explain(exc: BaseException) -> str:
    parts = [f"{type(exc).__name__}: {exc}"]
    cause: BaseException | None = exc.__cause__ or exc.__context__
    while cause is not None and len(parts) < 4:
        parts.append(f"{type(cause).__name__}: {cause}")
        for sub in getattr(cause, "schema_errors", ()) or ():
            parts.append(f"  {getattr(sub, 'message', sub)} at {list(getattr(sub, 'path', []))}")
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(parts)[:2000]


class GraphQLContract:
    """A GraphQL schema (SDL)."""

    def __init__(self, name: str) -> None:
        from graphql import build_schema

        self.name = name
        text = (CONTRACTS / name).read_text()
        self.schema = build_schema(text)

    def _document(self, req: Recorded) -> tuple[Any, Any, dict[str, Any]]:
        from graphql import parse

        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise ValueError("the body is not a GraphQL request ({query, variables})")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise ValueError("variables is not an object")
        return parse(body["query"]), body.get("operationName"), variables

    def check_request(self, req: Recorded, base_url: str) -> str | None:
        from graphql import OperationDefinitionNode, validate
        from graphql.execution.values import get_variable_values

        try:
            doc, _name, variables = self._document(req)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        errors = validate(self.schema, doc)
        if errors:
            return "; ".join(e.message for e in errors)
        for op in doc.definitions:
            if isinstance(op, OperationDefinitionNode):
                coerced = get_variable_values(self.schema, op.variable_definitions or (),
                                              variables)
                if isinstance(coerced, list):
                    return "; ".join(e.message for e in coerced)
        return None

    def check_reply(self, req: Recorded, base_url: str, reply: Reply) -> str | None:
        """The fake's reply, executed against the schema with its data as the root: a field
        the schema does not have, a missing non-null one or a wrong enum is a violation."""
        from graphql import execute_sync

        data = reply.json.get("data") if isinstance(reply.json, dict) else None
        if reply.status != 200 or not isinstance(data, dict):
            return None
        try:
            doc, name, variables = self._document(req)
        except Exception:
            return None
        result = execute_sync(self.schema, doc, root_value=data, variable_values=variables,
                              operation_name=name)
        if result.errors:
            return "; ".join(e.message for e in result.errors)
        if result.data != data:
            return f"the reply has fields the query did not ask for: {data} != {result.data}"
        return None


Contract = OpenAPIContract | GraphQLContract


@functools.cache
def contract(name: str, prefix: str = "") -> Contract:
    """A contract by file name, loaded once per test session."""
    if name.endswith(".graphql"):
        return GraphQLContract(name)
    return OpenAPIContract(name, prefix)


def guard(fake: str, spec: Contract, base_url: Callable[[], str],
          handler: Callable[[Recorded], Reply]) -> Callable[[Recorded], Reply]:
    """``handler`` behind the contract: a request that breaks it is answered 400 (as the
    target refuses it) and recorded; a reply of the fake that breaks it is recorded."""

    def checked(req: Recorded) -> Reply:
        err = spec.check_request(req, base_url())
        if err is not None:
            record(f"{fake}: {req.method} {req.target} breaks {spec.name}: {err}")
            return Reply(400, json={"detail": f"contract violation: {err}"})
        reply = handler(req)
        bad = spec.check_reply(req, base_url(), reply)
        if bad is not None:
            record(f"{fake}: its reply to {req.method} {req.target} breaks {spec.name}: {bad}")
        return reply

    return checked
