"""The alert stage's input (`schemas/alert_input.py`): its message round-trips, junk is
named, the earlier message form still reads, and what the zone stage builds from a record
version is what the earlier form said of the same report and incident."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.alert_input import (
    AlertInput,
    encode_alert_input,
    from_incident,
    occurred_ms,
    read_alert_input,
)
from schemas.codes import Category, Party, Severity, TimePrecision, Verification
from schemas.incident import Incident
from schemas.report import Report
from schemas.validation import validate_report
from streams.classify import Classifier, Gazetteer, ZoneCatalogue
from streams.record.alert_view import alert_input
from streams.record.book import IncidentBook
from streams.record.documents import version_of
from streams.record.incident import Status
from streams.record.linking import LinkRule
from streams.record.model import ReportVersion
from streams.tools.simulate import Simulator

pytestmark = pytest.mark.timeout(60)

texts = st.text(min_size=1, max_size=20)
inputs = st.builds(
    AlertInput,
    incident_id=texts,
    zone=texts,
    occurred_ms=st.integers(-(2**50), 2**50),
    category=st.sampled_from(Category),
    severity=st.sampled_from(Severity),
    verification=st.sampled_from(Verification),
    perpetrator=st.sampled_from(Party),
    killed=st.integers(0, 10**6),
    wounded=st.integers(0, 10**6),
    target=texts,
    civilian=st.booleans(),
    place=st.none() | texts,
    source=texts,
    time_precision=st.sampled_from(TimePrecision),
)


@given(inputs)
def test_a_message_round_trips(i: AlertInput) -> None:
    assert read_alert_input(encode_alert_input(i)) == i


def good() -> dict[str, Any]:
    i = AlertInput(
        "id-1", "shusha", 1_700_000_000_000, Category.SMALL_ARMS_FIRE, Severity.MEDIUM,
        Verification.OBSERVED, Party.AZ, 0, 1, "am", False, "Shusha", "pkf-op-1",
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(encode_alert_input(i))
    return doc


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kind": "retract"}, "kind 'retract' is not 'incident'"),
        ({"category": "shelling"}, "category 'shelling': Input should be 'small_arms_fire'"),
        ({"perpetrator": "contested"}, "perpetrator 'contested': Input should be 'az'"),
        ({"severity": None}, "severity None: Input should be 'low'"),
        ({"killed": -1}, "killed -1: Input should be greater than or equal to 0"),
        ({"wounded": 1.0}, "wounded 1.0: Input should be a valid integer"),
        ({"wounded": True}, "wounded True: Input should be a valid integer"),
        ({"occurred_ms": "1"}, "occurred_ms '1': Input should be a valid integer"),
        ({"civilian": 0}, "civilian 0: Input should be a valid boolean"),
        ({"place": 3}, "place 3: Input should be a valid string"),
        ({"incident_id": ""}, "incident_id '': String should have at least 1 character"),
        ({"source": None}, "source None: Input should be a valid string"),
    ],
)
def test_junk_is_named(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"not an alert input: {words}")):
        read_alert_input(json.dumps(good() | change).encode())


def test_missing_fields_and_non_objects_are_named() -> None:
    doc = good()
    del doc["zone"]
    with pytest.raises(ValueError, match="missing 'zone'"):
        read_alert_input(json.dumps(doc).encode())
    for raw in (b"[1]", b'"x"', b"{not json"):
        with pytest.raises(ValueError, match="not an alert input"):
            read_alert_input(raw)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_occurred_ms_floors_as_the_engine_does(at: datetime) -> None:
    """From the float seconds a record version keeps, the millisecond `to_ms` gives the
    datetime they were read from (microseconds and all)."""
    from alerting.times import to_ms

    assert occurred_ms(at.timestamp()) == to_ms(at)


CLASSIFIER = Classifier(ZoneCatalogue.load(), Gazetteer.load())
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_the_zone_stage_says_what_the_earlier_form_said() -> None:
    """For a simulated run's reports, the input built from each record version and its
    incident is the earlier message (the report's document with the incident's fields,
    its time among them, over it) read through the `Incident` model; and that earlier
    message still reads."""
    sim = Simulator(seed=3, start=NOW)
    book = IncidentBook(LinkRule())
    compared = contested = 0
    for raw in sim.reports(600, rate=40):
        report = validate_report(json.dumps(raw).encode(), now=sim.clock)
        if not isinstance(report, Report):
            continue
        try:
            incident = CLASSIFIER.classify(report, sim.clock)
        except ValueError:
            continue
        doc = incident.model_dump(mode="json")
        version = version_of(doc)
        assert isinstance(version, ReportVersion)
        for record in book.upsert(version).incidents:
            if record.status is not Status.OPEN:
                continue
            if not any((s, r) == version.ident for s, r, _ in record.fields.reports):
                continue
            f = record.fields
            earlier = {
                **doc,
                "incident_id": record.incident_id,
                "occurred_at": datetime.fromtimestamp(f.occurred, UTC).isoformat(),
                "time_precision": str(f.time_precision),
                "category": str(f.category),
                "severity": str(f.severity),
                "verification": str(f.verification),
                "perpetrator": f.attribution if f.attribution in set(Party) else "unknown",
                "killed": f.killed,
                "wounded": f.wounded,
            }
            contested += f.attribution == "contested"
            built = alert_input(version, incident.civilian, record)
            assert built == from_incident(Incident.model_validate(earlier))
            assert read_alert_input(json.dumps(earlier).encode()) == built
            compared += 1
    assert compared > 300 and contested > 0


def test_the_civilian_flag_is_the_incident_s_not_the_last_joined_report_s() -> None:
    """A post reported two civilians killed; a party's statement without casualties
    joined: the incident's input said `civilian: false` (the statement's flag), which
    resolved a `civilian: true` rule, and a third report (civilians killed) fired it again
    with a new alert_id. The flag is that of the report the casualty figures come from."""
    from alerting.engine import evaluate_batch
    from alerting.rules import parse_rules
    from alerting.zone_state import ZoneState

    rules = parse_rules(
        """
rules:
  - name: civilian-deaths
    kind: incident
    severity: critical
    match: {civilian: true, min_killed: 1}
"""
    )
    at = datetime(2021, 5, 12, 10, 0, tzinfo=UTC)

    def report(rid: str, source: str, kind: str, minute: int, **more: Any) -> Report:
        body = {
            "report_id": rid,
            "source": source,
            "source_type": kind,
            "occurred_at": (at + minute * timedelta(minutes=1)).isoformat(),
            "location": {"place": "Shusha"},
            "category": "civilian_harm",
            "perpetrator": "az",
            "target": "civilians",
            **more,
        }
        r = validate_report(json.dumps(body).encode())
        assert isinstance(r, Report)
        return r

    post = report(
        "a", "pkf-op-1", "observation_post", 0, casualties={"killed": 2, "civilian": True}
    )
    statement = report("b", "az-mod", "party_statement", 5, claimant="az", perpetrator="am")
    ngo = report("c", "hrw", "ngo", 8, casualties={"killed": 2, "civilian": True})
    book = IncidentBook(LinkRule())
    state = ZoneState.new("shusha")
    flags, events = [], []
    for n, r in enumerate((post, statement, ngo)):
        now = at + 20 * n * timedelta(minutes=1)
        incident = CLASSIFIER.classify(r, now)
        version = version_of(incident.model_dump(mode="json"))
        assert isinstance(version, ReportVersion)
        [record] = [i for i in book.upsert(version).incidents if i.status is Status.OPEN]
        heard = alert_input(version, incident.civilian, record, book.report)
        flags.append((heard.killed, heard.civilian))
        events += evaluate_batch(rules, state, [heard], now)
    assert len(record.fields.reports) == 3  # one incident of the three
    assert flags == [(2, True)] * 3
    assert [(e.rule, e.status) for e in events] == [("civilian-deaths", "firing")]
