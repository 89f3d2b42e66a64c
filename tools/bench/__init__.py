"""Benchmarks: the deployed pipeline against its baselines, storage upserts, enrich on one core."""
