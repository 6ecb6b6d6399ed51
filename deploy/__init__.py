"""Deployment and observability artefacts of the ceasefire monitor (not installed)."""
