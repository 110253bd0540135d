"""Shared test helpers (importable by every suite as ``tests.helpers``).

- ``httpserver``: ``LocalServer``, a real scripted HTTP/1.1 server on 127.0.0.1 that records
  requests; ``Reply`` (status, json/body, headers, delay, trickling chunks, gzip, drop);
  ``closed_port()``.
- ``fakes``: stateful fakes of Airflow REST v2 (JWT, 409 on duplicate dag_run_id), dbt Cloud,
  Dagster GraphQL and an Idempotency-Key webhook, mounted on a ``LocalServer``.
- ``clock``: ``FakeClock``, injected sleep/clock/wall_clock/random that records sleeps.
- ``drive``: ``Driver``, one interface over ``Engine`` and ``AsyncEngine``.
"""
