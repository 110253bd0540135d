"""Component instances, one folder each (loaded by ``dagster.load_from_defs_folder``)."""
