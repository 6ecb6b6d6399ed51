"""The record's hot dataclasses have written-out `__init__`s (the generated frozen ones
cost twice as much): each must take every field, in order, with the field's default, and
set it, so that a field added to the class and not to its `__init__` fails here."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from streams.record.incident import IncidentFields, IncidentRecord
from streams.record.model import ReportVersion
from streams.record.revisions import Decision, IdentityRecord

CLASSES = [ReportVersion, IncidentFields, IncidentRecord, Decision, IdentityRecord]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_written_out_init_takes_every_field_with_its_default(cls: type[Any]) -> None:
    fields = [f for f in dataclasses.fields(cls) if f.init]
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in params] == [f.name for f in fields]
    for f, p in zip(fields, params, strict=True):
        want = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        assert p.default == want, f.name


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_written_out_init_sets_every_field(cls: type[Any]) -> None:
    # Built from an instance's fields by keyword: equal to it, field by field.
    instance = _instance(cls)
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(cls) if f.init}
    again = cls(**values)
    for f in dataclasses.fields(cls):
        assert getattr(again, f.name) == getattr(instance, f.name), f.name


def _instance(cls: type[Any]) -> Any:
    from schemas.codes import Category, SourceType
    from streams.record.incident import derive
    from streams.record.revisions import IdentityState

    report = ReportVersion(
        "src",
        "r-1",
        2,
        SourceType.OBSERVATION_POST,
        1_700_000_000.0,
        "shusha",
        39.76,
        46.75,
        Category.HEAVY_WEAPONS_FIRE,
        killed=1,
        target="civilians",
    )
    if cls is ReportVersion:
        return report
    fields = derive([report])
    if cls is IncidentFields:
        return fields
    if cls is IncidentRecord:
        from streams.record.incident import Status

        return IncidentRecord("inc-1", 3, Status.OPEN, None, fields)
    decision = IdentityState().apply(report)
    if cls is Decision:
        return decision
    return IdentityRecord(2, report.digest, False, "shusha")
