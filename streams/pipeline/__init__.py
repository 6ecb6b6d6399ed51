"""The Faust worker: topics, the ingest stage, the counting agent and their wiring."""
