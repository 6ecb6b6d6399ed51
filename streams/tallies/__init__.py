"""Where incidents are counted: event-time cells and rolling-window queries.

Pure data structures; the zone stage (`streams.pipeline.zone_stage`) feeds them every
incident version it publishes.
"""
