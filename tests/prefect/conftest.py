from __future__ import annotations

from tests.fixtures.prefect_server import prefect_server

__all__ = ["prefect_server"]
