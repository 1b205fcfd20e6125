"""Measurement tools: benchmarks and the tables in docs/, allowed to import training and realtime."""
