"""Pydantic v2 schemas: the report that comes in; incident, dead-letter and alert records out."""
