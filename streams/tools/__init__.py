"""Operator tools: the feeder, the simulator, input formats."""
