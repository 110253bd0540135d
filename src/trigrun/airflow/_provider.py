"""Provider metadata for Airflow's ``apache_airflow_provider`` entry point.

Airflow imports this module (through ``trigrun.airflow``) while it discovers providers, in every
component, before any DAG is parsed. So it must import nothing from Airflow and nothing heavy:
it is plain data. The connection form is declared here (``conn-fields`` and
``ui-field-behaviour``, the declarative format of Airflow 3.2+), not with the deprecated
``get_ui_field_behaviour()`` hook method, so the API server never imports the hook to draw it.

On 3.0 and 3.1 the declarative form keys are ignored: the form shows Airflow's standard fields
and trigrun's options go in the Extra JSON (docs/airflow.md, "Airflow versions").

On an Airflow trigrun does not support (2.x, or a major release not yet tested) nothing is
registered - no hook, connection type, trigger or link that could not load - and one warning
says what to install instead.

The package name must equal the distribution name (``trigrun``): Airflow checks it.
"""

from __future__ import annotations

import logging
from typing import Any

from ._versions import installed_airflow, unsupported

_INTEGRATION = "TrigRun"
_PKG = "trigrun.airflow"
_warned = False


def get_provider_info() -> dict[str, Any]:
    from trigrun import __version__

    info: dict[str, Any] = {
        "package-name": "trigrun",
        "name": "TrigRun",
        "versions": [__version__],
    }
    problem = unsupported(installed_airflow())
    if problem is not None:
        global _warned
        if not _warned:  # Airflow discovers providers more than once per process
            _warned = True
            logging.getLogger(__name__).warning("%s; the trigrun provider is not registered",
                                                problem)
        return {**info, "description": f"Not registered: {problem}."}
    return {**info, **_components()}


def _components() -> dict[str, Any]:
    return {
        "description": "Trigger external jobs over HTTP (Airflow, dbt Cloud, Prefect, Dagster, "
                       "webhooks) exactly once, and wait for them without holding a worker slot.",
        "integrations": [{
            "integration-name": _INTEGRATION,
            "tags": ["service"],
        }],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.operators"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors"]}],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hooks"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers"]}],
        "extra-links": [f"{_PKG}.links.{name}" for name in (
            "TrigRunLink", "AirflowRunLink", "DagsterRunLink", "DbtCloudRunLink",
            "PrefectRunLink")],
        "connection-types": [{
            "connection-type": "trigrun",
            "hook-class-name": f"{_PKG}.hooks.TrigRunHook",
            "hook-name": "TrigRun",
            "ui-field-behaviour": {
                "hidden-fields": ["schema", "port"],
                "relabeling": {
                    "host": "Base URL",
                    "login": "Username",
                    "password": "Password or API token",
                },
                "placeholders": {
                    "host": "https://airflow.example.com",
                    "login": "leave empty to send the password as a bearer token",
                    "password": "password, or an API token when Username is empty",
                    "extra": '{"headers": {"X-Api-Key": "..."}}',
                    "auth_type": "auto",
                },
            },
            "conn-fields": {
                "auth_type": {
                    "label": "Auth type",
                    "description": "auto (default): a Username means Airflow's /auth/token for "
                                   "Airflow targets and basic auth otherwise, no Username means "
                                   "a bearer token. Or one of bearer, basic, airflow_password, "
                                   "header, none.",
                    # No null: the form would offer "null" beside "none". The default is
                    # what the form starts on (Airflow copies it to the field's value).
                    "schema": {"type": "string", "default": "auto",
                               "enum": ["auto", "bearer", "basic", "airflow_password",
                                        "header", "none"]},
                },
                "auth_header": {
                    "label": "Auth header name",
                    "description": "For auth type 'header': the header that carries the password.",
                    "schema": {"type": ["string", "null"]},
                },
                "proxy": {
                    "label": "Proxy",
                    "description": "http(s):// proxy for this connection's jobs, credentials "
                                   "included (http://user:pass@proxy:3128); stored as a "
                                   "secret reference, never in the spec. Empty: the "
                                   "environment's HTTP(S)_PROXY / NO_PROXY.",
                    "schema": {"type": ["string", "null"]},
                },
                "verify": {
                    "label": "TLS verify",
                    "description": "true (default), false, system (the OS trust store), or "
                                   "the path of a CA bundle on the workers and triggerers.",
                    "schema": {"type": ["string", "null"]},
                },
                "max_requests_per_second": {
                    "label": "Max requests per second",
                    "description": "A ceiling on the requests per second this connection's "
                                   "jobs send to its Base URL's origin, shared by every fire, "
                                   "poll and cancel of a worker or triggerer (all deferred "
                                   "tasks of a triggerer share it). Empty: no ceiling (a 429 "
                                   "or 503 with Retry-After still pauses the origin).",
                    "schema": {"type": ["number", "null"], "exclusiveMinimum": 0},
                },
                "cert": {
                    "label": "Client certificate",
                    "description": "Mutual TLS: path of a PEM with certificate and key, or "
                                   "'cert.pem,key.pem'.",
                    "schema": {"type": ["string", "null"]},
                },
            },
        }],
    }
