"""Changelog-backed state: one write path, one exact-end recovery (`changelog.py`)."""
