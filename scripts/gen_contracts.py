"""Regenerate the targets' contracts the fakes in tests/helpers/fakes.py validate against.

Each contract is extracted from the pinned package that serves the API, never copied by hand:
only the operations trigrun calls and the schemas they reach are kept.

- tests/contracts/airflow_v2.json: Airflow 3's REST API (the OpenAPI documents shipped in the
  installed ``apache-airflow``: the core API and the simple auth manager's ``/auth/token``).
- tests/contracts/dagster.graphql: Dagster's GraphQL schema from the installed
  ``dagster-graphql``, pruned to the root fields trigrun uses.
- tests/contracts/prefect.json: Prefect 3's REST API from the pinned Prefect in its own venv
  (scripts/prefect-venv.sh), run with that venv's Python.

tests/contracts/dbt_cloud.yaml and airflow_v1.yaml are written by hand from the published
documentation (their headers name the source): those targets ship no package here.

Usage (from the repository root, with the project's venv):
    python scripts/gen_contracts.py [airflow] [dagster] [prefect]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "contracts"
PREFECT_PY = Path(os.environ.get("TRIGRUN_PREFECT_VENV", ROOT / ".venv-prefect")) / "bin" / "python"

AIRFLOW_OPS = {
    "/api/v2/dags/{dag_id}/dagRuns": ("get", "post"),
    "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}": ("get", "patch"),
}
AUTH_OPS = {"/auth/token": ("post",)}
PREFECT_OPS = {
    "/deployments/{id}/create_flow_run": ("post",),
    "/flow_runs/{id}": ("get",),
    "/flow_runs/{id}/set_state": ("post",),
    "/flow_runs/filter": ("post",),
}
DAGSTER_QUERY = ("runsOrError", "runOrError")
DAGSTER_MUTATION = ("launchRun", "terminateRun")


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for v in node.values():
            found |= _refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= _refs(v)
    return found


def subset(specs: list[dict[str, Any]], ops: list[dict[str, tuple[str, ...]]],
           title: str) -> dict[str, Any]:
    """The operations asked for, from one or more OpenAPI documents, with every component
    schema they reach."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    version = specs[0]["openapi"]
    for spec, want in zip(specs, ops, strict=True):
        for path, methods in want.items():
            item = spec["paths"][path]
            paths[path] = {m: item[m] for m in methods}
            if "parameters" in item:
                paths[path]["parameters"] = item["parameters"]
        all_schemas = spec.get("components", {}).get("schemas", {})
        # Kept with the operations that name them: older openapi-core versions (the matrix's
        # Airflow rows resolve it as of each release) fail on a security requirement whose
        # scheme is missing.
        all_schemes = spec.get("components", {}).get("securitySchemes", {})
        for p in want:
            for op in paths[p].values():
                for requirement in op.get("security", []) if isinstance(op, dict) else []:
                    schemes.update({n: all_schemes[n] for n in requirement if n in all_schemes})
        todo = _refs([paths[p] for p in want])
        while todo:
            name = todo.pop()
            if name in schemas:
                continue
            schemas[name] = all_schemas[name]
            todo |= _refs(schemas[name]) - set(schemas)
    return {"openapi": version, "info": {"title": title, "version": "generated"},
            "paths": paths, "components": {"schemas": dict(sorted(schemas.items())),
                                           **({"securitySchemes": dict(sorted(schemes.items()))}
                                              if schemes else {})}}


def airflow() -> None:
    import airflow
    import yaml

    base = Path(airflow.__file__).parent / "api_fastapi"
    core = yaml.safe_load((base / "core_api/openapi/v2-rest-api-generated.yaml").read_text())
    auth = yaml.safe_load(
        (base / "auth/managers/simple/openapi/v2-simple-auth-manager-generated.yaml").read_text())
    doc = subset([core, auth], [AIRFLOW_OPS, AUTH_OPS],
                 f"Airflow {airflow.__version__} REST API v2 (subset trigrun calls; generated "
                 "by scripts/gen_contracts.py from the installed apache-airflow)")
    _write("airflow_v2.json", doc)


def dagster() -> None:
    import dagster_graphql
    from dagster_graphql.schema import create_schema
    from graphql import GraphQLObjectType, GraphQLSchema, print_schema

    full = create_schema()
    full = getattr(full, "graphql_schema", full)
    q, m = full.query_type, full.mutation_type
    if q is None or m is None:
        sys.exit("dagster-graphql has no query or mutation type")
    pruned = GraphQLSchema(
        query=GraphQLObjectType("Query", {f: q.fields[f] for f in DAGSTER_QUERY}),
        mutation=GraphQLObjectType("Mutation", {f: m.fields[f] for f in DAGSTER_MUTATION}))
    head = (f"# Dagster GraphQL schema, dagster-graphql {dagster_graphql.__version__}: the root "
            "fields trigrun uses\n# and every type they reach. Generated by "
            "scripts/gen_contracts.py; do not edit.\n")
    (OUT / "dagster.graphql").write_text(head + print_schema(pruned) + "\n")
    print("wrote tests/contracts/dagster.graphql")


def prefect() -> None:
    if not PREFECT_PY.exists():
        sys.exit(f"no Prefect venv at {PREFECT_PY.parent.parent}: run scripts/prefect-venv.sh")
    code = ("import json, prefect; from prefect.server.api.server import create_api_app; "
            "print(json.dumps({'version': prefect.__version__, "
            "'spec': create_api_app().openapi()}))")
    out = subprocess.run([str(PREFECT_PY), "-c", code], check=True, capture_output=True,
                         text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    doc = subset([got["spec"]], [PREFECT_OPS],
                 f"Prefect {got['version']} REST API (subset trigrun calls, under /api; "
                 "generated by scripts/gen_contracts.py from the pinned prefect)")
    _write("prefect.json", doc)


def _write(name: str, doc: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote tests/contracts/{name}")


def main(argv: list[str]) -> None:
    which = argv or ["airflow", "dagster", "prefect"]
    for name in which:
        {"airflow": airflow, "dagster": dagster, "prefect": prefect}[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
