"""The job spec: pydantic models for one TrigRun job. Defaults live here and only here."""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ._duration import DURATION_FIX, DURATION_PATTERN, parse_duration
from ._exceptions import SpecError, job_label, spec_error
from ._origins import is_template, literal_origin, normalize_allowed, origin

DEFAULT_RETRY_STATUSES = (429, 500, 502, 503, 504)
# 4xx that mean "try again later" and so may be listed in retry_on_statuses.
RETRYABLE_4XX = frozenset({408, 425, 429})


# Spec files repeat a handful of cron expressions across hundreds of jobs, and DAG files are
# parsed every 30 seconds: validating an expression once per process is enough.
_cron_is_valid = functools.lru_cache(maxsize=4096)(croniter.is_valid)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Schedule(_Model):
    """When a job fires. ``cron`` for ``kind: cron``, ``at`` for ``kind: once``."""

    cron: str | None = Field(None, examples=["0 1 * * *"],
                             description="Five-field cron expression, evaluated in `timezone`.")
    timezone: str = Field("UTC", examples=["America/New_York"],
                          description="IANA time zone the cron expression is read in.")
    at: datetime | None = Field(None, description="For `kind: once`: the single fire time "
                                "(ISO 8601; a naive time is read in `timezone`).")

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = " ".join(v.split())
        if len(v.split()) != 5 or not _cron_is_valid(v):
            raise ValueError(
                f"{v!r} is not a valid 5-field cron expression "
                "(minute hour day-of-month month day-of-week), e.g. '0 1 * * *'"
            )
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a zone folder name
            raise ValueError(
                f"unknown time zone {v!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from None
        return v

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


# Connection settings shared by a raw ``request`` and the short-form targets: where a job is
# sent from (proxy, environment) and how the TLS peer is checked. Defaults live here only.
Verify = Annotated[bool | str, Field(description="TLS verification: true (certifi's CA "
                                     "bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR`), false, "
                                     "`system` (the OS trust store), or the path of a CA bundle.")]
Cert = Annotated[str | tuple[str, str] | None, Field(
    description="Client certificate for mutual TLS: a PEM file holding certificate and key, or "
    "a `[cert, key]` pair of paths.")]
Proxy = Annotated[str | None, Field(
    description="Proxy URL for this job (http:// or https://; CONNECT for https targets). "
    "Credentials in it may be `secret://` references. Default: the environment's "
    "`HTTP(S)_PROXY` / `ALL_PROXY` / `NO_PROXY`, when `trust_env`.")]
TrustEnv = Annotated[bool, Field(description="Honour the environment's proxy variables and "
                                 "`SSL_CERT_FILE` / `SSL_CERT_DIR`.")]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CRLF = re.compile(r"[\r\n\x00]")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def check_url(v: str, *, what: str = "URL") -> str:
    """An absolute http(s) URL whose host can be valid. A template's literal part is checked
    now, the rest once rendered (this runs again on the rendered spec)."""
    if _CONTROL.search(v):
        raise ValueError(f"the {what} holds a control character (NUL, CR, LF or another); "
                         "remove it")
    templated = is_template(v)
    if templated and literal_origin(v) is None:
        return v  # scheme or host is a template: checked once rendered
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{v!r} is not an absolute http(s) URL, e.g. 'https://host/path'")
    if origin(v) is None:
        host = re.split(r"[/?#]", v.split("://", 1)[1], maxsplit=1)[0]
        raise ValueError(f"{v!r}: the host {host!r} cannot be valid (a space, a backslash or "
                         "another character a host cannot hold, or a bad port); fix the "
                         f"{what}. This is a spec error, not a network one: it is not retried")
    return v


class _Connects(_Model):
    """A model that holds the connection settings above (``verify``, ``cert``, ``proxy``)."""

    if TYPE_CHECKING:  # declared by each subclass, where they stand in the docs' field order
        verify: bool | str
        cert: str | tuple[str, str] | None
        proxy: str | None
        trust_env: bool

    @field_validator("proxy", check_fields=False)
    @classmethod
    def _proxy(cls, v: str | None) -> str | None:
        if v is None or "{{" in v or "secret://" in v:  # checked again once resolved
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) proxy URL; use e.g. "
                             "'http://proxy.example.com:3128' (credentials may be secret:// "
                             "references: 'http://user:secret://proxy-password@proxy:3128')")
        return v

    @field_validator("base_url", check_fields=False)
    @classmethod
    def _base_url(cls, v: str) -> str:
        if "secret://" in v:  # checked once resolved
            return v
        return check_url(v, what="base_url")

    @field_validator("cert", mode="before", check_fields=False)
    @classmethod
    def _cert(cls, v: Any) -> Any:
        if isinstance(v, list) and len(v) != 2:
            raise ValueError("cert: give one PEM path (certificate and key) or a [cert, key] "
                             "pair of paths")
        return v


class RequestSpec(_Connects):
    """The HTTP request that triggers the job (the seed's ``request`` object)."""

    url: str = Field(description="Absolute http(s) URL. May hold templates and `secret://` references.")
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="Header values may be `secret://name` references.")
    body: Any = Field(None, description="JSON body (object or list), or a string sent as is.")
    timeout_seconds: float = Field(30.0, gt=0, le=3600,
                                   description="Per-attempt limit for the whole exchange.")
    follow_redirects: bool = Field(False, description="Follow 3xx. Credentials are never sent to another origin.")
    verify: Verify = True
    cert: Cert = None
    proxy: Proxy = None
    trust_env: TrustEnv = True

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_url(v)

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _TOKEN.match(name):
                raise ValueError(f"{name[:40]!r} is not a valid HTTP header name (letters, "
                                 "digits and !#$%&'*+-.^_`|~ only, no spaces or colons)")
            if _CRLF.search(value):
                raise ValueError(f"the value of header {name!r} holds a CR, LF or NUL "
                                 "character, which would split the request; remove it")
        return v


class RetryPolicy(_Model):
    """How the trigger request is retried. The delay formula is in docs/retries.md."""

    max_attempts: int = Field(3, ge=1, le=50, description="Attempts in all, the first included.")
    retry_on_statuses: list[int] = Field(default_factory=lambda: list(DEFAULT_RETRY_STATUSES))
    retry_on_network_errors: bool = True
    initial_backoff_seconds: float = Field(1.0, ge=0)
    max_backoff_seconds: float = Field(60.0, ge=0)
    backoff_multiplier: float = Field(2.0, ge=1)
    jitter: float = Field(0.1, ge=0, le=1, description="Fraction of the delay drawn at random and taken off.")
    respect_retry_after: bool = True
    max_retry_after_seconds: float = Field(300.0, ge=0, description="Cap on a server's Retry-After.")
    max_elapsed_seconds: float | None = Field(600.0, gt=0, description="No retry starts after this long.")

    @field_validator("retry_on_statuses")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        for code in v:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code")
            if 400 <= code < 500 and code not in RETRYABLE_4XX:
                raise ValueError(
                    f"{code} is a client error that will fail again the same way; trigrun "
                    f"retries only {sorted(RETRYABLE_4XX)} among 4xx. Remove {code}."
                )
        return sorted(set(v))


class WaitSpec(_Model):
    """Polling the downstream run until it ends."""

    enabled: bool | None = Field(None, description="Wait for the run. Default: yes when the "
                                 "target can report a run's state.")
    poll_interval_seconds: float = Field(30.0, gt=0)
    timeout_seconds: float = Field(86400.0, gt=0, description="The wait's own deadline.")
    cancel_on_timeout: bool = True
    max_consecutive_poll_errors: int = Field(5, ge=1, description="Transient poll failures in a row before giving up.")
    batch: bool = Field(True, description="Let the async engine check this run in one batched "
                        "status request with the other runs it waits on at the same target "
                        "(docs/batching.md); false: poll this run on its own.")
    # Webhook preset: how to find and read the run.
    status_url: str | None = Field(None, description="Webhook: status URL, `{run_id}` is replaced.")
    run_id_path: str | None = Field(None, description="Webhook: dotted path of the run id in the trigger response.")
    status_path: str | None = Field(None, description="Webhook: dotted path of the status in the status response.")
    run_url_path: str | None = None
    cancel_url: str | None = Field(None, description="Webhook: POSTed to cancel; `{run_id}` is replaced.")
    batch_status_url: str | None = Field(
        None, description="Webhook: one GET reads many runs (docs/batching.md); `{run_ids}` is "
        "replaced by up to `batch_size` run ids, comma-separated, each percent-encoded.")
    batch_runs_path: str | None = Field(
        None, description="Webhook: dotted path of the list of runs in the batch reply "
        "(default: the reply is the list). Each item is read with `batch_id_path`, "
        "`status_path` and `run_url_path`.")
    batch_id_path: str = Field("id", description="Webhook: dotted path of the run id in "
                               "each item of the batch reply.")
    batch_size: int = Field(100, ge=1, le=1000, description="Webhook: run ids per batch request.")
    success_values: list[str] = Field(default_factory=lambda: ["success", "succeeded", "completed", "complete", "done"])
    failure_values: list[str] = Field(default_factory=lambda: ["failed", "failure", "error", "errored"])
    cancelled_values: list[str] = Field(default_factory=lambda: ["cancelled", "canceled", "aborted"])
    running_values: list[str] = Field(default_factory=lambda: ["queued", "pending", "scheduled", "running", "started", "in_progress", "starting"])


class PartitionsSpec(_Model):
    """The job's Dagster partitions (docs/dagster.md): one downstream run per partition.
    ``start``: time windows that follow the job's cron (in its time zone) from this date;
    ``keys``: static partitions, the key in templates as ``{{ partition_key }}``."""

    start: datetime | None = Field(None, examples=["2026-01-01"], description="First window "
                                   "(ISO 8601 date or time, read in schedule.timezone); "
                                   "needs schedule.cron, whose ticks bound the windows.")
    end: datetime | None = Field(None, description="Last window's end (default: open).")
    keys: list[str] | None = Field(None, min_length=1, examples=[["eu", "us"]],
                                   description="Static partition keys (instead of `start`).")
    time: Literal["start", "end"] = Field(
        "start", description="Which edge of a time window is the fire's scheduled time "
        "(templates, idempotency key): `start` = Airflow's data_interval_start, `end` = "
        "data_interval_end (the tick that closes the window).")

    @model_validator(mode="after")
    def _one_kind(self) -> PartitionsSpec:
        if (self.start is None) == (self.keys is None):
            raise ValueError("partitions: give `start` (time windows along schedule.cron) or "
                             "`keys` (static partitions), e.g. {\"start\": \"2026-01-01\"}")
        return self


class QueueSpec(_Model):
    """The queue a job runs in (the seed's ``queue``): jobs of one queue name share its
    concurrency limit. Mapped to the orchestrator's own mechanism: an Airflow pool, a Dagster
    pool, a semaphore in ``AsyncEngine.fire_many`` / ``run_many`` and ``trigrun fire --all``."""

    name: str = Field(min_length=1, max_length=250, examples=["warehouse"],
                      description="Queue name; jobs with the same name share the limit.")
    concurrency_limit: int | None = Field(
        None, ge=1, description="At most this many of the queue's jobs in flight at once "
        "(None: no limit of its own). Where jobs of one queue give different limits, an "
        "engine keeps the first it sees.")


def _delay(v: Any) -> Any:
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return v
    try:
        return parse_duration(v)
    except ValueError:
        raise ValueError(f"{v!r} is not a delay; {DURATION_FIX}") from None


Delay = Annotated[
    float, BeforeValidator(_delay), Field(ge=0),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": DURATION_PATTERN}],
                    "default": 0, "examples": [30, "5m"],
                    "description": "Time between the scheduled time and the fire: seconds, "
                    "or a duration string ('30s', '5m', '1h30m'). `ttl_seconds` counts from "
                    "the delayed time."}),
]


class IdempotencySpec(_Model):
    enabled: bool = True
    key: str | None = Field(None, description="Template for the key; default: derived from job name and scheduled time.")


# --- auth ---------------------------------------------------------------------------------


class BearerAuth(_Model):
    type: Literal["bearer"]
    token: str

    @field_validator("token")
    @classmethod
    def _token(cls, v: str) -> str:
        if _CRLF.search(v):
            raise ValueError("the token holds a CR, LF or NUL character, which would split "
                             "the request; remove it")
        return v


class BasicAuth(_Model):
    type: Literal["basic"]
    username: str
    password: str


class HeaderAuth(_Model):
    type: Literal["header"]
    name: str
    value: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TOKEN.match(v):
            raise ValueError(f"{v[:40]!r} is not a valid HTTP header name")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        if _CRLF.search(v):
            raise ValueError("the value holds a CR, LF or NUL character, which would split "
                             "the request; remove it")
        return v


class AirflowPasswordAuth(_Model):
    """Airflow 3: POST ``/auth/token`` for a JWT, cached until expiry, refreshed once on 401."""

    type: Literal["airflow_password"]
    username: str
    password: str
    token_url: str | None = Field(None, description="Default: `{base_url}/auth/token`.")

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, v: str | None) -> str | None:
        return v if v is None or "secret://" in v else check_url(v, what="token_url")


Auth = Annotated[
    BearerAuth | BasicAuth | HeaderAuth | AirflowPasswordAuth, Field(discriminator="type")
]

# --- short-form targets -------------------------------------------------------------------


class AirflowTarget(_Connects):
    type: Literal["airflow"]
    base_url: str
    dag_id: str
    conf: dict[str, Any] = Field(default_factory=dict)
    api_version: Literal["auto", "v1", "v2"] = "auto"
    logical_date: str | None = Field(
        None, description="Default: null on v2, omitted on v1. Set, the DAG gets one run per "
        "logical date: a re-run of the same tick after a failed run cannot start "
        "(docs/idempotency.md).")
    note: str | None = None
    verify: Verify = True
    cert: Cert = None
    proxy: Proxy = None
    trust_env: TrustEnv = True


class DbtCloudTarget(_Connects):
    type: Literal["dbt_cloud"]
    base_url: str = "https://cloud.getdbt.com"
    account_id: int | str
    job_id: int | str
    cause: str = "Triggered by trigrun"
    steps_override: list[str] | None = None
    verify: Verify = True
    cert: Cert = None
    proxy: Proxy = None
    trust_env: TrustEnv = True


class PrefectTarget(_Connects):
    type: Literal["prefect"]
    base_url: str = Field(description="The API root, e.g. http://127.0.0.1:4200/api")
    deployment_id: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    ui_url: str | None = None
    verify: Verify = True
    cert: Cert = None
    proxy: Proxy = None
    trust_env: TrustEnv = True


class DagsterTarget(_Connects):
    type: Literal["dagster"]
    base_url: str = Field(description="The webserver root; GraphQL is at `{base_url}/graphql`.")
    job_name: str
    repository_location_name: str = Field(
        min_length=1,
        description="The code location holding the job (Dagster UI: Deployment > Code locations); "
        "Dagster's launchRun requires it, so it may not be empty.", examples=["my_project"])
    repository_name: str = "__repository__"
    run_config: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    verify: Verify = True
    cert: Cert = None
    proxy: Proxy = None
    trust_env: TrustEnv = True


class WebhookTarget(_Model):
    type: Literal["webhook"]


Target = Annotated[
    AirflowTarget | DbtCloudTarget | PrefectTarget | DagsterTarget | WebhookTarget,
    Field(discriminator="type"),
]
TargetName = Literal["auto", "airflow", "dbt_cloud", "prefect", "dagster", "webhook"]

_AIRFLOW_URL = re.compile(r"^(?P<base>.*?)/api/(?P<ver>v1|v2)/dags/(?P<dag>[^/]+)/dagRuns/?$")
_DBT_URL = re.compile(r"^(?P<base>.*?)/api/v2/accounts/(?P<acct>[^/]+)/jobs/(?P<job>[^/]+)/run/?$")
_PREFECT_URL = re.compile(r"^(?P<base>.*?)/deployments/(?P<dep>[^/]+)/create_flow_run/?$")
_DAGSTER_URL = re.compile(r"^(?P<base>.*?)/graphql/?$")


_NOT_SLUG = re.compile(r"[^A-Za-z0-9]+")


def slugify(name: str) -> str:
    """Job ``name`` as a name safe for Airflow dag ids, Dagster job names and env vars."""
    return _NOT_SLUG.sub("_", name).strip("_").lower() or "job"


def detect_target(url: str) -> str:
    """Which preset a raw request URL belongs to (``webhook`` when none)."""
    path_url = url.split("?", 1)[0]
    for name, rx in (("airflow", _AIRFLOW_URL), ("dbt_cloud", _DBT_URL),
                     ("prefect", _PREFECT_URL), ("dagster", _DAGSTER_URL)):
        if rx.match(path_url):
            return name
    return "webhook"


def target_from_url(name: str, url: str, body: Any) -> Any:
    """Build the short-form target a raw request stands for."""
    path_url = url.split("?", 1)[0]
    if name == "airflow" and (m := _AIRFLOW_URL.match(path_url)):
        conf = body.get("conf", {}) if isinstance(body, dict) else {}
        return AirflowTarget(type="airflow", base_url=m["base"], dag_id=m["dag"], conf=conf,
                             api_version=m["ver"])  # type: ignore[arg-type]
    if name == "dbt_cloud" and (m := _DBT_URL.match(path_url)):
        return DbtCloudTarget(type="dbt_cloud", base_url=m["base"], account_id=m["acct"],
                              job_id=m["job"])
    if name == "prefect" and (m := _PREFECT_URL.match(path_url)):
        return PrefectTarget(type="prefect", base_url=m["base"], deployment_id=m["dep"])
    if name == "dagster" and (m := _DAGSTER_URL.match(path_url)):
        # The raw body carries its own selector; the short form's fields stay unset here.
        return DagsterTarget.model_construct(type="dagster", base_url=m["base"], job_name="",
                                             repository_location_name="")
    return None


def static_size(body: Any) -> int | None:
    """The bytes a body without templates or secrets is sent as (as the engines encode it);
    None when rendering or a secret's value decides."""
    if body is None:
        return None
    try:
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    if is_template(text) or "secret://" in text:
        return None
    return len(text.encode())


class JobSpec(_Model):
    """One job in the TrigRun job-spec format. The seed's JSON is valid input, verbatim."""

    name: str = Field(min_length=1, max_length=250, examples=["Nightly ETL - production to warehouse"])
    kind: Literal["cron", "once", "manual"] | None = Field(
        None, description="Default: `cron` when schedule.cron is set, `once` with schedule.at, else `manual`.")
    description: str | None = None
    enabled: bool = True
    schedule: Schedule | None = None
    request: RequestSpec | None = Field(None, description="The raw trigger request. "
                                        "Either this or a short-form `target`.")
    target: TargetName | Target = Field("auto", description="Which preset interprets the "
                                              "request, or a short-form target.")
    auth: Auth | None = None
    retry_policy: RetryPolicy = Field(default_factory=RetryPolicy)
    wait: WaitSpec = Field(default_factory=WaitSpec)
    idempotency: IdempotencySpec = Field(default_factory=IdempotencySpec)
    ttl_seconds: float | None = Field(None, gt=0, description="Skip a fire more than this late.")
    overlap: Literal["allow", "skip", "reuse"] = "allow"
    params: dict[str, Any] = Field(default_factory=dict, description="Values for `{{ params.x }}`.")
    tags: list[str] = Field(default_factory=list)
    owner: str | None = None
    max_response_bytes: int = Field(65536, ge=256, description="Response bytes kept in results and logs.")
    max_request_bytes: int = Field(1048576, ge=1, description="Largest trigger request body "
                                   "sent (after rendering); a larger one is refused before "
                                   "anything is sent.")
    delay_seconds: Delay = Field(0.0, description="Time between the scheduled time and the "
                                 "fire: seconds, or a duration string ('30s', '5m', '1h30m'). "
                                 "`ttl_seconds` counts from the delayed time.")
    queue: QueueSpec | None = Field(None, description="The job's queue and its concurrency "
                                    "limit, e.g. {\"name\": \"warehouse\", "
                                    "\"concurrency_limit\": 3}.")
    allowed_origins: list[str] = Field(
        default_factory=list, description="More origins (`scheme://host[:port]`, written "
        "literally) the job's credentials may be sent to, besides the one its URL names "
        "literally; needed when the URL's scheme, host or port is a template "
        "(docs/security.md).", examples=[["https://api.example.com"]])
    link_upstream: bool = Field(True, description="Tell the downstream run who started it "
                                "(docs/upstream.md): the Airflow DAG run's note and conf key "
                                "`trigrun`, Dagster run tags, the Prefect flow run's name and "
                                "tags, the dbt Cloud cause. False: send none of it.")
    partitions: PartitionsSpec | None = Field(
        None, description="Dagster only: partition the job's asset, one downstream run per "
        "partition (docs/dagster.md), e.g. {\"start\": \"2026-01-01\"} for windows along "
        "schedule.cron.")

    @field_validator("allowed_origins")
    @classmethod
    def _allowed(cls, v: list[str]) -> list[str]:
        return [normalize_allowed(o) for o in v]

    @model_validator(mode="after")
    def _check(self) -> JobSpec:
        kind = self.effective_kind
        if kind == "cron" and (self.schedule is None or self.schedule.cron is None):
            raise ValueError("schedule.cron: kind 'cron' needs schedule.cron, e.g. {\"schedule\": {\"cron\": \"0 1 * * *\"}}")
        if kind == "once" and (self.schedule is None or self.schedule.at is None):
            raise ValueError("schedule.at: kind 'once' needs schedule.at, an ISO 8601 time")
        short = not isinstance(self.target, str)
        if self.request is None and not short:
            raise ValueError("request: give either `request` (url, method, headers, body) or a short-form "
                             "`target` such as {\"type\": \"airflow\", \"base_url\": ..., \"dag_id\": ...}")
        if self.request is not None and short and self.target.type != "webhook":  # type: ignore[union-attr]
            raise ValueError("target: give `request` or a short-form `target`, not both; with a raw "
                             "request name the preset as a string, e.g. \"target\": \"airflow\"")
        if (isinstance(self.target, str) and self.target not in ("auto", "webhook")
                and self.request
                and target_from_url(self.target, self.request.url, self.request.body) is None):
            raise ValueError(f"target: target {self.target!r} does not match request.url "
                             f"{self.request.url!r}; use target 'webhook' or fix the URL")
        tname = self.target_name
        if tname == "webhook":
            w = self.wait
            if self.wait.enabled and not w.status_url:
                raise ValueError("wait.status_url: wait.enabled on a webhook target needs wait.status_url "
                                 "(with {run_id}) and wait.run_id_path / wait.status_path")
            if w.status_url and not (w.status_path and ("{run_id}" not in w.status_url or w.run_id_path)):
                raise ValueError("wait.status_path: wait.status_url needs wait.status_path, and wait.run_id_path "
                                 "when the URL holds {run_id}")
            if w.batch_status_url is not None and "{run_ids}" not in w.batch_status_url:
                raise ValueError("wait.batch_status_url: the URL needs `{run_ids}` where the run ids go, "
                                 "e.g. https://example.com/runs?ids={run_ids}")
            if w.batch_status_url is not None and not w.status_url:
                raise ValueError("wait.batch_status_url: needs wait.status_url as well (a run the batch "
                                 "reply does not show is read there)")
            if self.overlap != "allow":
                raise ValueError("overlap: overlap 'skip'/'reuse' needs a target that can list active "
                                 "runs (airflow, dbt_cloud, prefect, dagster); webhook cannot")
        if isinstance(self.auth, AirflowPasswordAuth) and tname != "airflow" and not self.auth.token_url:
            raise ValueError("auth.token_url: auth type 'airflow_password' needs an airflow target or auth.token_url")
        if tname == "dagster" and isinstance(self.target, DagsterTarget) is False and self.request:
            body = self.request.body
            if not (isinstance(body, dict) and "query" in body):
                raise ValueError("request.body: a raw Dagster request needs a GraphQL body with 'query'; or use "
                                 "the short form {\"type\": \"dagster\", \"job_name\": ...}")
        return self

    @property
    def effective_kind(self) -> str:
        if self.kind is not None:
            return self.kind
        if self.schedule is not None and self.schedule.cron:
            return "cron"
        if self.schedule is not None and self.schedule.at:
            return "once"
        return "manual"

    @property
    def target_name(self) -> str:
        if not isinstance(self.target, str):
            return self.target.type
        if self.target == "auto":
            assert self.request is not None
            return detect_target(self.request.url)
        return self.target

    def resolved_target(self) -> Any:
        """The short-form target this spec stands for (parsed from the URL for raw requests)."""
        if not isinstance(self.target, str):
            return self.target
        assert self.request is not None
        name = self.target_name
        if name == "webhook":
            return WebhookTarget(type="webhook")
        return target_from_url(name, self.request.url, self.request.body)

    @property
    def waits(self) -> bool:
        """Whether a fire of this job is followed by a wait, unless the caller says otherwise."""
        if self.wait.enabled is not None:
            return self.wait.enabled
        if self.target_name == "webhook":
            return self.wait.status_url is not None
        return True

    @property
    def slug(self) -> str:
        """A name safe for Airflow dag ids, Dagster job names and env vars."""
        return slugify(self.name)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> JobSpec:
        """pydantic's ``model_validate``, raising :class:`trigrun.SpecValidationError`: a
        ``trigrun.SpecError`` with the message ``load_jobs`` gives (job, field, fix) that is
        also the ``pydantic.ValidationError`` it wraps."""
        from pydantic import ValidationError

        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            if isinstance(exc, SpecError):
                raise
            raise spec_error(exc, job=job_label(obj)) from None

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any) -> JobSpec:
        """As ``model_validate``, from JSON text."""
        import json

        from pydantic import ValidationError

        try:
            return super().model_validate_json(json_data, *args, **kwargs)
        except ValidationError as exc:
            if isinstance(exc, SpecError):
                raise
            try:
                obj = json.loads(json_data)
            except ValueError:
                obj = None
            raise spec_error(exc, job=job_label(obj)) from None
