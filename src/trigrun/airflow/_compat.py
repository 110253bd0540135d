"""Fail early, with the fix in the message, when Airflow 3 is not installed."""

from __future__ import annotations

INSTALL_HINT = ("trigrun.airflow needs Apache Airflow 3.1 or later (the Task SDK, "
                "`airflow.sdk`); install it with: pip install 'trigrun[airflow]'")

try:
    import airflow.sdk  # noqa: F401
except ModuleNotFoundError as exc:  # Airflow missing, or Airflow 2 without the Task SDK
    raise ImportError(INSTALL_HINT) from exc
