"""The link back on a Dagster run that trigrun launched: a run-status sensor for the *target*
Dagster deployment that writes "Triggered by <upstream>: <url>" into the run's own event log.

Dagster's run page shows tags as plain text (behind "View tags and config"), but it turns the
URLs in event-log messages into links, and shows an engine event's URL metadata as a link. A
run launched over GraphQL can carry only tags and run config, so the link is written by this
sensor, in the target's own code location, when the run starts (docs/upstream.md).
"""

from __future__ import annotations

import dagster as dg

# Not exported by name (Dagster 1.13); what report_engine_event takes for the metadata.
from dagster._core.events import EngineEventData

from .._targets.dagster import UPSTREAM_TAG, UPSTREAM_URL_TAG
from ._metadata import http_url

DEFAULT_NAME = "trigrun_upstream_links"


def upstream_event(run: dg.DagsterRun) -> tuple[str, dict[str, dg.MetadataValue]] | None:
    """The message and metadata for ``run``'s event log, or None when trigrun did not start it."""
    name = run.tags.get(UPSTREAM_TAG)
    if not name:
        return None
    url = http_url(run.tags.get(UPSTREAM_URL_TAG))
    message = f"Triggered by {name}" + (f": {url}" if url else "")
    md: dict[str, dg.MetadataValue] = {"upstream": dg.MetadataValue.text(name)}
    if url:
        md["upstream_url"] = dg.MetadataValue.url(url)
    return message, md


def build_upstream_link_sensor(
        name: str = DEFAULT_NAME, *,
        default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds: int | None = None) -> dg.SensorDefinition:
    """A run-status sensor for the Dagster deployment trigrun *launches runs on*: when a run
    tagged ``trigrun/upstream`` starts, it writes an engine event "Triggered by <name>: <url>"
    (URL metadata ``upstream_url``) into that run's event log, where the run page shows it
    as a clickable link. Add it to the target's ``Definitions``; it watches every code
    location of the instance and needs the daemon (``dagster dev`` runs one)."""

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.STARTED, name=name,
                          monitor_all_code_locations=True, default_status=default_status,
                          minimum_interval_seconds=minimum_interval_seconds,
                          description="Writes the link to the run that started a trigrun-"
                                      "launched run into its event log")
    def _link(context: dg.RunStatusSensorContext) -> None:
        found = upstream_event(context.dagster_run)
        if found is None:
            return
        message, md = found
        context.instance.report_engine_event(
            message, context.dagster_run, EngineEventData(metadata=md))

    return _link
