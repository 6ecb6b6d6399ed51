"""Where reports are counted: de-duplication, event-time buckets and rolling-window queries.

Pure data structures; the Faust counting agent feeds them and persists their
changes through a changelog-backed table (see `streams.pipeline.counting`).
"""
