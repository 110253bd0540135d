"""Pure helpers shared by the operator, sensor, trigger and DAG factory (no Airflow imports).

A spec travels through Airflow as a JSON dict, never as a ``JobSpec``: Airflow's Jinja renders
dicts (a frozen pydantic model it would leave alone), the serialized DAG and the rendered-fields
tab show it, and the trigger's kwargs store it. The dict only ever holds ``secret://``
references, so none of these places can leak a value.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from .._exceptions import SpecError, format_validation_error
from .._models import JobSpec, detect_target
from .._origins import normalize_allowed

# Arguments of the operator/sensor that are job-spec fields (the rest go to BaseOperator).
# ``retry_policy``, ``params`` and ``queue`` (the executor's queue) are BaseOperator arguments
# in Airflow, so the spec's are spelled ``trigger_retry_policy``, ``job_params``, ``job_queue``.
SPEC_ARGS = {
    "job_name": "name", "request": "request", "target": "target",
    "auth": "auth", "trigger_retry_policy": "retry_policy", "wait": "wait",
    "idempotency": "idempotency", "ttl_seconds": "ttl_seconds", "overlap": "overlap",
    "job_params": "params", "max_response_bytes": "max_response_bytes",
    "delay_seconds": "delay_seconds", "job_queue": "queue", "max_request_bytes": "max_request_bytes",
    "link_upstream": "link_upstream",
}
REQUEST_ARGS = {"url": "url", "method": "method", "headers": "headers", "body": "body",
                "request_timeout": "timeout_seconds", "verify": "verify"}
_SAFE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """The JSON form of a spec: only the fields that were set, so it stays small."""
    return spec.model_dump(mode="json", exclude_unset=True, by_alias=True)


def build_spec_dict(spec: JobSpec | Mapping[str, Any] | None, fields: Mapping[str, Any],
                    where: str) -> dict[str, Any]:
    """Merge a spec (model or dict) with operator arguments that are spec fields."""
    if isinstance(spec, JobSpec):
        data = spec_to_dict(spec)
    elif isinstance(spec, Mapping):
        data = copy.deepcopy(dict(spec))
    elif spec is None:
        data = {}
    else:
        raise TypeError(f"{where}: spec must be a trigrun.JobSpec or a dict in the job-spec "
                        f"format, not {type(spec).__name__}")
    request = {REQUEST_ARGS[k]: v for k, v in fields.items() if k in REQUEST_ARGS and v is not None}
    if request:
        data["request"] = {**(data.get("request") or {}), **request}
    for arg, name in SPEC_ARGS.items():
        value = fields.get(arg)
        if value is not None:
            data[name] = value
    if not data:
        raise SpecError(f"{where}: give a spec (trigrun.JobSpec or dict) or the request "
                        "fields (url=..., or target={...})")
    return data


def validate(data: Mapping[str, Any], where: str) -> JobSpec:
    """``JobSpec.model_validate`` with an error that names the task and the field."""
    name = str(data.get("name") or "<unnamed>")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = format_validation_error(exc, job=name, source=where)
        raise SpecError("\n".join(problems), problems=problems) from None


def _target_type(data: Mapping[str, Any]) -> str | None:
    target = data.get("target", "auto")
    if isinstance(target, Mapping):
        return str(target.get("type"))
    if target != "auto":
        return str(target)
    url = (data.get("request") or {}).get("url")
    return detect_target(url) if isinstance(url, str) else None


def target_kind(data: Mapping[str, Any]) -> str | None:
    """The preset a spec dict targets (``airflow``, ``dagster``...), or ``None`` when it cannot
    be told before run time (a templated or missing target)."""
    try:
        kind = _target_type(data)
    except Exception:
        return None
    if kind is None or "{" in kind:
        return None
    return kind


def lineage_dataset(data: Mapping[str, Any]) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of the job a spec dict starts: the target's origin
    (without credentials) and the job on it."""
    target = data.get("target")
    request = data.get("request") if isinstance(data.get("request"), Mapping) else {}
    t = target if isinstance(target, Mapping) else {}
    url = str(t.get("base_url") or (request or {}).get("url") or "")
    namespace = origin(url)
    scheme, sep, rest = namespace.partition("://")
    namespace = f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else namespace
    kind = target_kind(data)
    if kind == "airflow" and t.get("dag_id"):
        name = str(t["dag_id"])
    elif kind == "dagster" and t.get("job_name"):
        name = str(t["job_name"])
    elif kind == "dbt_cloud" and t.get("job_id"):
        name = f"{t.get('account_id')}/{t['job_id']}"
    elif kind == "prefect" and t.get("deployment_id"):
        name = str(t["deployment_id"])
    else:  # a webhook's path may carry its token (Slack, Teams): the job's name instead
        name = str(data.get("name") or "webhook")
    if not namespace.startswith(("http://", "https://")) or "{" in namespace:
        namespace = "trigrun"  # a secret:// reference or a template: nothing to show
    return namespace, name


@dataclass(frozen=True)
class ConnectionInfo:
    """What a ``trigrun`` connection contributes to a spec. Holds no secret value."""

    conn_id: str
    base_url: str | None = None
    login: str | None = None
    has_password: bool = False
    auth_type: str = "auto"
    auth_header: str | None = None
    header_names: tuple[str, ...] = ()
    # Connection settings for the jobs (see ``_models.RequestSpec``); the proxy only as a flag:
    # it may hold credentials, so the spec gets a reference to it.
    has_proxy: bool = False
    verify: bool | str | None = None
    cert: str | tuple[str, str] | None = None
    # A requests-per-second ceiling on the base URL's origin (extra ``max_requests_per_second``).
    max_requests_per_second: float | None = None
    # More origins the connection's credentials may go to (extra ``allowed_origins``).
    allowed_origins: tuple[str, ...] = ()

    @classmethod
    def from_connection(cls, conn: Any, extra: Mapping[str, Any]) -> ConnectionInfo:
        host = (conn.host or "").strip()
        base: str | None = None
        if host:
            if "://" not in host:
                scheme = conn.schema if conn.schema in ("http", "https") else "https"
                host = f"{scheme}://{host}"
            base = host.rstrip("/")
            if conn.port and not re.search(r"://[^/]*:\d+", base):
                scheme, _, rest = base.partition("://")
                netloc, slash, path = rest.partition("/")
                base = f"{scheme}://{netloc}:{conn.port}{slash}{path}"
        headers = extra.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise SpecError(f"connection {conn.conn_id!r}: extra 'headers' must be an object "
                            "of header names to values")

        def opt(key: str) -> Any:
            return extra.get(key) or extra.get(f"extra__trigrun__{key}")

        return cls(conn_id=conn.conn_id, base_url=base, login=conn.login or None,
                   has_password=bool(conn.password), auth_type=str(opt("auth_type") or "auto"),
                   auth_header=opt("auth_header"), header_names=tuple(headers),
                   has_proxy=bool(opt("proxy")), verify=_verify(opt("verify")),
                   cert=_cert(opt("cert")),
                   max_requests_per_second=_rate(conn.conn_id, opt("max_requests_per_second")),
                   allowed_origins=_origins(conn.conn_id, opt("allowed_origins")))

    def rates(self) -> dict[str, float]:
        """``max_requests_per_second`` for the engine: ``{origin of the base URL: ceiling}``."""
        if not self.max_requests_per_second or not self.base_url:
            return {}
        return {origin(self.base_url): self.max_requests_per_second}

    def ref(self, *path: str) -> str:
        return "secret://conn/" + "/".join((self.conn_id, *path))


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, as the engine keys its per-origin limits."""
    i = url.find("://")
    j = url.find("/", i + 3) if i >= 0 else -1
    return url if j < 0 else url[:j]


def _origins(conn_id: str, value: Any) -> tuple[str, ...]:
    """Extra ``allowed_origins``: a list, or one string of origins split by commas or spaces."""
    if not value:
        return ()
    items = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise SpecError(f"connection {conn_id!r}: extra allowed_origins must be a list of "
                        "origins, e.g. [\"https://api.example.com\"]")
    try:
        return tuple(normalize_allowed(str(o)) for o in items)
    except ValueError as exc:
        raise SpecError(f"connection {conn_id!r}: extra allowed_origins: {exc}") from None


def _rate(conn_id: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if not rate > 0 or rate == float("inf"):
        raise SpecError(f"connection {conn_id!r}: extra max_requests_per_second={value!r} must "
                        "be a number of requests per second above 0 (e.g. 5 or 0.5); leave it "
                        "empty for no ceiling")
    return rate


def _verify(value: Any) -> bool | str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    lowered = text.lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    return text


def _cert(value: Any) -> str | tuple[str, str] | None:
    if not value:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return (str(value[0]), str(value[1]))
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    return (parts[0], parts[1]) if len(parts) == 2 else str(value).strip()


PLACEHOLDER_BASE_URL = "https://trigrun-connection.invalid"


def placeholder(conn_id: str) -> ConnectionInfo:
    """Stands in for a connection at DAG parse time, where no lookup may happen."""
    return ConnectionInfo(conn_id=conn_id, base_url=PLACEHOLDER_BASE_URL, login=None,
                          has_password=True)


def apply_connection(data: Mapping[str, Any], info: ConnectionInfo) -> dict[str, Any]:
    """The spec dict with the connection's base URL, auth and headers filled in.

    The spec's own values win. Credentials go in as ``secret://conn/<id>/...`` references, so
    the result can be rendered, serialized and stored like any other spec.
    """
    if not _SAFE_REF.match(info.conn_id):
        raise SpecError(f"connection id {info.conn_id!r} cannot be used by trigrun: use letters, "
                        "digits, '_', '-' and '.' only")
    out = copy.deepcopy(dict(data))
    job = out.get("name") or "<unnamed>"
    target = out.get("target")
    request = out.get("request")
    if isinstance(target, Mapping) and info.base_url and not target.get("base_url"):
        out["target"] = {**target, "base_url": info.base_url}
    if isinstance(request, Mapping):
        url = request.get("url")
        if isinstance(url, str) and url.startswith("/"):
            if not info.base_url:
                raise SpecError(f"job {job!r}, field request.url: {url!r} is relative but "
                                f"connection {info.conn_id!r} has no host (base URL)")
            request = {**request, "url": info.base_url + url}
            out["request"] = request
    if info.header_names:
        if not isinstance(request, Mapping):
            raise SpecError(f"job {job!r}: connection {info.conn_id!r} has extra headers, but a "
                            "short-form target sends no custom headers; use a raw `request` "
                            "(url, method, body) with target set to the preset name")
        for name in info.header_names:
            if not _SAFE_REF.match(name):
                raise SpecError(f"connection {info.conn_id!r}: header name {name!r} is not a "
                                "plain token (letters, digits, '-', '_', '.')")
        own = {k.lower() for k in request.get("headers") or {}}
        added = {n: info.ref("extra", "headers", n) for n in info.header_names if n.lower() not in own}
        out["request"] = {**request, "headers": {**added, **(request.get("headers") or {})}}
    # The connection's proxy / TLS settings, where the job sends from: the raw request, or the
    # short-form target. A job's own settings win.
    holder_key = "request" if isinstance(out.get("request"), Mapping) else (
        "target" if isinstance(out.get("target"), Mapping) and out["target"].get("type") != "webhook"
        else None)
    if holder_key is not None:
        holder = dict(out[holder_key])
        if info.has_proxy and not holder.get("proxy"):
            holder["proxy"] = info.ref("extra", "proxy")
        if info.verify is not None and "verify" not in holder:
            holder["verify"] = info.verify
        if info.cert is not None and not holder.get("cert"):
            holder["cert"] = list(info.cert) if isinstance(info.cert, tuple) else info.cert
        out[holder_key] = holder
    if out.get("auth") is None:
        auth = _auth(info, _target_type(out))
        if auth is not None:
            out["auth"] = auth
    return out


def _auth(info: ConnectionInfo, target: str | None) -> dict[str, Any] | None:
    kind = (info.auth_type or "auto").lower()
    if kind == "none" or not info.has_password:
        return None
    password = info.ref("password")
    if kind == "auto":
        # A username means a password login; alone, the password is a token.
        kind = ("airflow_password" if target == "airflow" else "basic") if info.login else "bearer"
    if kind == "bearer":
        return {"type": "bearer", "token": password}
    if kind in ("basic", "airflow_password"):
        if not info.login:
            raise SpecError(f"connection {info.conn_id!r}: auth type {kind!r} needs a Username")
        return {"type": kind, "username": info.login, "password": password}
    if kind == "header":
        return {"type": "header", "name": info.auth_header or "Authorization", "value": password}
    raise SpecError(f"connection {info.conn_id!r}: unknown auth_type {info.auth_type!r}; use "
                    "auto, bearer, basic, airflow_password, header or none")


def scheduled_time(context: Mapping[str, Any]) -> datetime:
    """The run's logical date, or ``run_after`` when it has none. Never the try number."""
    dag_run = context.get("dag_run")
    when = getattr(dag_run, "logical_date", None) or context.get("logical_date")
    if when is None:
        when = getattr(dag_run, "run_after", None)
    if when is None:
        raise RuntimeError("the task context has neither a logical date nor run_after")
    if not isinstance(when, datetime):
        when = datetime.fromisoformat(str(when))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


EVENT_STATUS = {"success": "success", "cancelled": "cancelled", "timeout": "timeout"}


def event_status(state: str) -> str:
    """TriggerEvent ``status`` for a ``RunState`` value: failed and unknown are ``error``."""
    return EVENT_STATUS.get(state, "error")
