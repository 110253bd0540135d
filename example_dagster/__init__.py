"""trigrun's Dagster example: a code location built from job specs (see README.md)."""
