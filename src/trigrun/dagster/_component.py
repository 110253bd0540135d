"""``TrigRunComponent``: trigrun jobs declared in a ``defs.yaml``.

    type: trigrun.dagster.TrigRunComponent
    attributes:
      jobs_file: jobs.yaml          # next to defs.yaml; or `jobs:` inline
      secrets:
        airflow-api-key: AIRFLOW_API_KEY   # secret name -> environment variable NAME

Secrets are given by variable name and become ``EnvVar(name)``: the UI shows the name, the
value is read inside the run only. ``{{ env.X }}`` is refused there because it would put the
resolved value into the resource config the UI shows. Job specs are passed to trigrun
unresolved, so their ``{{ ds }}`` / ``{{ params.x }}`` templates render at fire time.
"""

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import dagster as dg
from pydantic import Field

from .._exceptions import SpecError
from .._loader import load_jobs, parse_jobs
from ._factories import build_trigrun_definitions
from ._resource import RESOURCE_KEY, TrigRunResource

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _raw_jobs(context: dg.ResolutionContext, value: Any) -> Any:
    # Passed through untouched: Dagster must not render trigrun's own {{ ds }} templates.
    return value


def _env_var_names(context: dg.ResolutionContext, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("secrets: expected a mapping of secret name to environment variable "
                         "name")
    out: dict[str, str] = {}
    for name, var in value.items():
        # The value is never echoed: it may be a pasted secret.
        if not isinstance(var, str) or not _ENV_NAME.match(var):
            raise ValueError(
                f"secrets.{name}: give the NAME of an environment variable (letters, digits, "
                "_; e.g. AIRFLOW_PASSWORD). Not a value, and not a template such as "
                "'{{ env.X }}', which would show the secret in the Dagster UI.")
        out[str(name)] = var
    return out


class TrigRunComponent(dg.Component, dg.Model, dg.Resolvable):
    # One line, no RST markup: `dg list components` prints the docstring's lines as they are.
    """trigrun jobs from a jobs file or inline specs: per job an executable asset (optionally partitioned), its job and, for cron jobs, a schedule; the trigrun resource with secrets as EnvVars; with wait_in: sensor, the completion sensor."""

    jobs_file: str | None = Field(
        default=None, description="Jobs file (YAML or JSON), relative to this defs.yaml.")
    jobs: Annotated[
        list[dict[str, Any]] | None,
        dg.Resolver(_raw_jobs, model_field_type=list[dict[str, Any]],
                    inject_before_resolve=False,
                    description="Job specs inline, in the trigrun job-spec format."),
    ] = None
    secrets: Annotated[
        dict[str, str],
        dg.Resolver(_env_var_names, model_field_type=dict[str, str],
                    inject_before_resolve=False,
                    description="secret name (secret://name) -> environment variable NAME."),
    ] = Field(default={})  # not default_factory: Dagster 1.11 adds a default beside it
    resource_key: str = Field(default=RESOURCE_KEY, description="Resource key of the "
                              "TrigRunResource (change it when two components share a location).")
    wait_in: Literal["op", "sensor"] = Field(
        default="op", description="'op': the op waits for the downstream run; 'sensor': the op "
        "only fires and the completion sensor waits.")
    schedules_running: bool = Field(default=False, description="Start the schedules running.")
    env_secrets_prefix: str = Field(default="TRIGRUN_SECRET_", description="Also resolve "
                                    "secret://name from PREFIX + NAME; empty turns it off.")
    verify: bool = True
    ca_bundle: str | None = None
    cert: str | None = Field(default=None, description="Client certificate (mutual TLS): a PEM "
                             "with certificate and key, or the certificate with cert_key.")
    cert_key: str | None = None
    proxy: str | None = Field(default=None, description="http(s) proxy URL without "
                              "credentials; for one with credentials use proxy_env.")
    proxy_env: str | None = Field(default=None, description="NAME of an environment variable "
                                  "holding the proxy URL (credentials included); it becomes "
                                  "EnvVar(NAME), so the UI never shows the value.")
    trust_env: bool = True
    sensor_name: str | None = Field(default=None, description="Default: "
                                    "<resource_key>_completion_sensor.")
    assets: Literal["executable", "external"] = Field(
        default="executable", description="'executable': each job is an asset that "
        "Materialize fires; 'external': a one-op job per spec and an asset that only "
        "records its runs.")
    deps: dict[str, list[str]] = Field(
        default={}, description="job name -> the job names it comes after: asset "
        "lineage (e.g. Transform: [Extract]).")
    dagster_url: str | None = Field(
        default=None, description="This Dagster UI's address, for the link each downstream "
        "run gets to the run that started it. Default: $DAGSTER_WEBSERVER_URL, else "
        "http://localhost:3000.")
    max_requests_per_second: float | None = Field(
        default=None, gt=0, description="Ceiling on requests per second to each target.")
    allowed_origins: list[str] = Field(
        default_factory=list, description="More origins (scheme://host[:port]) the jobs' "
        "credentials may go to (docs/security.md).")
    partitions: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="job name -> its partitions, as a jobs file's "
        "partitions: key (e.g. Nightly ETL: {start: '2026-01-01'}); wins over the jobs "
        "file's own.")
    partition_time: Literal["start", "end"] | None = Field(
        default=None, description="Which edge of a time-window partition is the fire's "
        "scheduled time: start (Airflow's data_interval_start) or end (data_interval_end). "
        "Default: each job's partitions.time, else start.")

    def _specs(self, base: Path) -> list[Any]:
        if (self.jobs_file is None) == (self.jobs is None):
            raise SpecError("TrigRunComponent: give exactly one of jobs_file or jobs")
        if self.jobs_file is not None:
            return load_jobs(base / self.jobs_file)
        return parse_jobs(self.jobs, source=str(base / "defs.yaml"))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        base = context.path if context.path.is_dir() else context.path.parent
        specs = self._specs(base)
        if self.partitions:
            specs = _with_partitions(specs, self.partitions)
        if self.proxy and urlsplit(self.proxy).password:
            raise SpecError("TrigRunComponent: proxy holds a password, which the Dagster UI "
                            "would show; put the URL in an environment variable and give its "
                            "name as proxy_env")
        proxy: Any = dg.EnvVar(self.proxy_env) if self.proxy_env else self.proxy
        resource = TrigRunResource(
            secrets={name: dg.EnvVar(var) for name, var in self.secrets.items()},
            env_secrets_prefix=self.env_secrets_prefix, verify=self.verify,
            ca_bundle=self.ca_bundle, cert=self.cert, cert_key=self.cert_key, proxy=proxy,
            trust_env=self.trust_env, dagster_url=self.dagster_url,
            max_requests_per_second=self.max_requests_per_second,
            allowed_origins=list(self.allowed_origins))
        return build_trigrun_definitions(
            specs, resource=resource, resource_key=self.resource_key, wait_in=self.wait_in,
            default_status=(dg.DefaultScheduleStatus.RUNNING if self.schedules_running
                            else dg.DefaultScheduleStatus.STOPPED),
            sensor_name=self.sensor_name or f"{self.resource_key}_completion_sensor",
            assets=self.assets, deps=self.deps or None, partition_time=self.partition_time)


def _with_partitions(specs: list[Any], partitions: dict[str, dict[str, Any]]) -> list[Any]:
    """The specs with ``partitions`` (job name or slug -> a jobs file's ``partitions:``)."""
    by_name = {s.name: s for s in specs} | {s.slug: s for s in specs}
    unknown = sorted(set(partitions) - set(by_name))
    if unknown:
        raise SpecError(f"TrigRunComponent: partitions: no job named {unknown}; give a job's "
                        f"name or slug, one of {sorted(s.name for s in specs)}")
    out = []
    for spec in specs:
        given = partitions.get(spec.name, partitions.get(spec.slug))
        if given is not None:
            data = spec.model_dump(mode="json", exclude_unset=True, by_alias=True)
            data["partitions"] = given
            spec = parse_jobs(data)[0]
        out.append(spec)
    return out
