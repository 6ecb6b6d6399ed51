"""The names of the worker's Faust tables: each stage keeps its state in one, the web asks
the partition assignor which worker holds which of their partitions (`streams/web/
fanout.py`), and their changelog topics are `<app id>-<name>-changelog`.

A leaf: the web reads these names without importing the stages (and with them Faust)."""

from __future__ import annotations

#: The identity stage's revision state per report identity (`identity_stage.py`).
IDENTITY_TABLE = "identity-state"
#: The zone stage's incident book (`zone_stage.py`).
ZONE_TABLE = "incident-book"
#: The alert stage's rule-engine state per zone (`alerting_stage.py`).
ALERT_TABLE = "alert-state"
#: The theatre stage's fatality ledger and firing alerts (`theatre_stage.py`).
THEATRE_TABLE = "theatre-state"
