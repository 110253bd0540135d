"""The project's root module for ``dg`` (dg.toml): ``dg`` looks for it inside the project
folder, so ``dg check defs``, ``dg list defs`` and ``dg dev`` work from ``example_dagster/``.
It holds the component folder ``defs/``; the rest of the package is the folder above, added
to this package's path (and the folder above adds this one), so ``example_dagster.definitions``
and ``example_dagster.defs`` resolve the same from either folder."""

from pathlib import Path

__path__.append(str(Path(__file__).resolve().parent.parent))
