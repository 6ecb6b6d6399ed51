"""Alerting: rules over incidents and tallies, the alert lifecycle, delivery.

Placeholder for issue 4; the core pipeline does not depend on it yet.
"""
