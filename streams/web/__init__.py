"""The worker's HTTP API (SPEC.md) and cross-worker tally queries."""
