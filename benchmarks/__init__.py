"""trigrun benchmarks: ``python -m benchmarks`` runs them all and writes README.md."""
