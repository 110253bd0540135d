"""trigrun's Dagster example: a code location built from job specs (see README.md).

Its component folder is ``example_dagster/example_dagster/defs`` (where ``dg`` looks for the
project's root module, run from this folder); it is added to this package's path, so
``example_dagster.defs`` resolves from the repository root too."""

from pathlib import Path

__path__.append(str(Path(__file__).resolve().parent / "example_dagster"))
