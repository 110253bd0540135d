"""Who started a fire: the upstream the downstream run names, so the two runs link both ways.

An integration passes ``upstream=Upstream(...)`` to ``Engine.fire`` / ``AsyncEngine.fire``
(and ``fire_many`` / ``run_many``): the Airflow operator its task instance, a Dagster op its
run, the ``trigrun`` CLI the host it runs on. Each preset writes it into the trigger request
in the target's own terms (docs/upstream.md): an Airflow DAG run's note and conf, Dagster run
tags, a Prefect flow run's name and tags, a dbt Cloud run's cause. ``link_upstream: false`` in
the job spec leaves it out. A plain Python call that passes no upstream sends nothing extra;
pass ``Upstream(kind="python", ...)`` to name the calling program.

The name and URL are not secrets, but they are run through the engine's redactor before they
are sent, like everything else that leaves trigrun. They never enter the idempotency key: a
retry from another host (another Airflow worker, a re-run Dagster op) is the same fire.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

UPSTREAM_KINDS = ("airflow", "dagster", "cli", "python")


@dataclass(frozen=True)
class Upstream:
    """The run that fires a job.

    ``kind``: ``"airflow"``, ``"dagster"``, ``"cli"`` or ``"python"``. ``name``: what a person
    reads in the downstream UI, e.g. ``"Airflow task etl.trigger (run scheduled__2026-...)"``
    or ``"Dagster run 1a2b3c4d of job nightly"``. ``url``: the upstream's own page (the task
    instance, the Dagster run), or None. ``run_id``: the upstream run's id, when it has one.
    """

    kind: str
    name: str
    url: str | None
    run_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in UPSTREAM_KINDS:
            raise ValueError(f"Upstream.kind {self.kind!r} is not one of {UPSTREAM_KINDS}")
        if not self.name:
            raise ValueError("Upstream.name must not be empty: it is what the downstream "
                             "run shows as the run that started it")

    @property
    def line(self) -> str:
        """``Triggered by <name>: <url>`` (no URL: ``Triggered by <name>``)."""
        return f"Triggered by {self.name}" + (f": {self.url}" if self.url else "")

    def conf(self) -> dict[str, Any]:
        """The ``trigrun`` conf key of an Airflow target's DAG run."""
        return {"upstream": self.name, "upstream_url": self.url, "kind": self.kind}
