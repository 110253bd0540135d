"""Which Airflow trigrun supports, read without importing Airflow.

Used by ``_compat`` (a clear ImportError) and by ``_provider`` (Airflow calls it while it
discovers providers, so it must not import Airflow itself). Airflow 3.0-3.3 are tested
(``scripts/test-matrix.sh``); every difference between them is in ``_compat``.
"""

from __future__ import annotations

import sys
from importlib import metadata

#: Oldest supported Airflow (the Task SDK, ``airflow.sdk``, arrived in 3.0) and the first
#: unsupported one; ``pyproject.toml``'s ``airflow`` extra says the same.
MIN_AIRFLOW = (3, 0)
BELOW_AIRFLOW = (4, 0)
SUPPORTED = "Apache Airflow 3.0 to 3.x (3.0, 3.1, 3.2 and 3.3 are tested)"
INSTALL = "pip install 'trigrun[airflow]'"


def installed_airflow() -> str | None:
    """The installed Airflow's version string, or None without Airflow."""
    # Provider discovery runs inside an Airflow that is already imported: its own version
    # string costs nothing, where a metadata lookup scans every installed distribution
    # (tens of ms in every Airflow process).
    version = getattr(sys.modules.get("airflow"), "__version__", None)
    if isinstance(version, str):
        return version
    # Airflow 3 installs its code as apache-airflow-core; `apache-airflow` is a meta package
    # that may be absent (core-only installs). Airflow 2 has only apache-airflow.
    for dist in ("apache-airflow-core", "apache-airflow"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def parse(version: str) -> tuple[int, int]:
    """``"3.1.8"`` -> ``(3, 1)``; pre-release tails (``3.2.0rc1``) are ignored."""
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def unsupported(version: str | None) -> str | None:
    """Why trigrun cannot run on this Airflow, or None when it can."""
    if version is None:
        return f"trigrun.airflow needs {SUPPORTED}, and Airflow is not installed; install it " \
               f"with: {INSTALL}"
    if not MIN_AIRFLOW <= parse(version) < BELOW_AIRFLOW:
        return (f"trigrun.airflow needs {SUPPORTED}, but Airflow {version} is installed; "
                f"upgrade Airflow (or install a matching one with: {INSTALL})")
    return None
