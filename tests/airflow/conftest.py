from tests.airflow._live import live  # noqa: F401  (fixture)
