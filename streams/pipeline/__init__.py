"""The Faust worker: the ingest stage, the identity, zone and alert stages, and their
wiring (`app.py`)."""
