"""Pydantic v2 schemas: the report that comes in, the incident, dead-letter and alert records that go out."""
