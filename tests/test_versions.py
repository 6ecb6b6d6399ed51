"""Classified documents as record versions, and the messages between the stages."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.incident import encode_fields, incident_id_for
from schemas.report import Report
from schemas.validation import validate_report
from streams.classify.classifier import Classifier
from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import ZoneCatalogue
from streams.pipeline.packs import murmur2
from streams.pipeline.zone_messages import (
    Floor,
    Remove,
    Upsert,
    document_upsert_message,
    floor_message,
    read_message,
    remove_message,
    upsert_message,
)
from streams.record.documents import (
    _NOT_CONTENT,
    BadDocument,
    document_digest,
    report_digest,
    version_of,
)
from streams.record.model import DIGEST_SIZE, ReportVersion, Withdrawal

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CLASSIFIER = Classifier(ZoneCatalogue.load(), Gazetteer.load())


#: A report as sent (the tests add to it).
SENT: dict[str, object] = {
    "report_id": "r1",
    "source": "pkf-op-1",
    "source_type": "observation_post",
    "occurred_at": "2026-03-01T11:00:00+00:00",
    "location": {"place": "Shusha"},
    "category": "small_arms_fire",
}


def classified(**changes: object) -> dict[str, object]:
    doc = SENT | {"claimant": "AZ MoD"} | changes
    report = validate_report(json.dumps(doc).encode(), now=NOW)
    assert isinstance(report, Report), report
    out: dict[str, object] = json.loads(CLASSIFIER.document(report, NOW).model_dump_json())
    return out


def test_a_resend_has_the_same_digest_and_a_change_another() -> None:
    first = version_of(classified())
    assert isinstance(first, ReportVersion)
    assert first.zone == "shusha" and first.claimant == "az"
    again = classified() | {"received_at": "2026-03-01T11:59:00+00:00"}  # later arrival
    assert version_of(again).digest == first.digest
    assert version_of(classified(casualties={"killed": 1})).digest != first.digest
    assert version_of(classified(revision=2)).digest == first.digest  # revision is no content


def test_a_withdrawal_document_is_a_withdrawal() -> None:
    doc = {"kind": "withdrawal", "source": "s", "report_id": "r", "revision": 3}
    assert version_of(doc) == Withdrawal("s", "r", 3)


def test_messages_round_trip_and_junk_is_named() -> None:
    doc = classified(casualties={"killed": 1, "civilian": True})
    version = version_of(doc)
    assert isinstance(version, ReportVersion) and version.civilian
    iid = incident_id_for(version.source, version.report_id)
    raw = upsert_message(version, True, iid, murmur2(iid.encode()))
    msg = read_message(raw)
    assert msg == Upsert(version, True, iid, murmur2(iid.encode()))
    # upserts of earlier versions: the whole document, with the id and hash or without them
    # (the zone stage works them out itself)
    digest = version.digest.hex().encode()
    whole = b'{"op":"upsert","digest":"' + digest + b'","doc":' + json.dumps(doc).encode()
    kh = murmur2(iid.encode())
    msg = read_message(whole + b',"iid":"' + iid.encode() + b'","kh":' + b"%d}" % kh)
    assert msg == Upsert(version, True, iid, kh, doc)
    msg = read_message(whole + b"}")
    assert msg == Upsert(version, True, doc=doc)  # every field of the version, the digest too
    # what CEASEFIRE_INTERNAL_FORMAT=1 writes: that form, with the id and hash
    raw = document_upsert_message(json.dumps(doc).encode(), version.digest, iid, kh)
    assert read_message(raw) == Upsert(version, True, iid, kh, doc)
    assert json.loads(raw)["doc"] == doc  # as the earlier zone stage read it
    assert read_message(remove_message("s", "r", 4)) == Remove("s", "r", 4)
    assert read_message(remove_message("s", "r", 4, to="shusha")) == Remove("s", "r", 4, "shusha")
    assert read_message(floor_message("s", "r", 3)) == Floor("s", "r", 3)
    for junk, words in (
        (b"{}", "missing 'op'"),
        (b'{"op": "upsert"}', "missing 'digest'"),
        (b'{"op": "upsert", "digest": "00"}', "missing 'doc'"),
        (b'{"op": "upsert", "digest": "00", "v": [], "civ": true}', "fields"),
        (b'{"op": "shout"}', "unknown op"),
        (b"[1]", "not a message"),
        (b"{not json", "not a message"),
        (b'{"op": "floor", "source": "s", "report_id": "r", "version": 2.0}', "version"),
        (b'{"op": "floor", "source": "s", "report_id": "", "version": 2}', "report_id"),
        (b'{"op": "floor", "source": "s", "version": 2}', "missing 'report_id'"),
        (b'{"op": "remove", "source": "s", "report_id": "r", "revision": 1, "to": 1}', "to"),
    ):
        with pytest.raises(BadDocument, match=words):
            read_message(junk)
    with pytest.raises(BadDocument, match="missing 'zone'"):
        version_of({k: v for k, v in doc.items() if k != "zone"})


def ingested(**changes: object) -> dict[str, object]:
    """The document ingest writes for the report of `classified(**changes)`."""
    from streams.intake import classify_report

    received = changes.pop("_received", NOW)
    assert isinstance(received, datetime)
    doc = {
        "report_id": "r1",
        "source": "pkf-op-1",
        "source_type": "observation_post",
        "occurred_at": "2026-03-01T15:00:00+04:00",
        "location": {"place": "Shusha"},
        "category": "small_arms_fire",
        "claimant": "AZ MoD",
        "description": "обстрел",  # non-ASCII: written as UTF-8, as pydantic writes it
    } | changes
    report = validate_report(json.dumps(doc).encode(), now=NOW)
    assert isinstance(report, Report), report
    routed = classify_report(report, received, CLASSIFIER)
    assert isinstance(routed, tuple), routed
    out: dict[str, object] = json.loads(routed[1])
    return out


def test_ingest_writes_the_classified_document_with_its_content_digests() -> None:
    from streams.intake import classify_report

    report = validate_report(
        json.dumps(
            {
                "report_id": "r1",
                "source": "pkf-op-1",
                "source_type": "observation_post",
                "occurred_at": "2026-03-01T15:00:00+04:00",
                "location": {"lat": 39.758, "lon": 46.748},
                "category": "small_arms_fire",
                "description": "обстрел",
            }
        ).encode(),
        now=NOW,
    )
    assert isinstance(report, Report)
    routed = classify_report(report, NOW, CLASSIFIER)
    assert isinstance(routed, tuple)
    written = routed[1]
    model = CLASSIFIER.classify(report, NOW)
    # The bytes pydantic writes for the model, with the digest set: what read it before
    # reads it the same.
    doc = json.loads(written)
    carried = {"digest": doc["digest"], "sent_digest": doc["sent_digest"]}
    assert written == model.model_copy(update=carried).model_dump_json().encode()
    assert len(bytes.fromhex(carried["digest"])) == 8
    assert bytes.fromhex(carried["sent_digest"]) == report_digest(report)


def test_ingest_names_where_it_read_a_report_outside_its_content() -> None:
    """With the input record's partition and offset (`Incident.input`), the document is
    the same but for that last key: the same digests (a re-send read elsewhere is no other
    content), and readers of the document take it (a withdrawal's too)."""
    from schemas.incident import ReportWithdrawal, decode_classified
    from schemas.report import WithdrawnReport
    from streams.intake import classify_report, process_record
    from streams.record.documents import legacy_digest

    raw = json.dumps(SENT).encode()
    plain = process_record(raw, NOW, CLASSIFIER)
    placed = process_record(raw, NOW, CLASSIFIER, origin=(3, 1234))
    assert isinstance(plain, tuple) and isinstance(placed, tuple)
    assert placed[1] == plain[1][:-1] + b',"input":[3,1234]}'
    doc, plain_doc = json.loads(placed[1]), json.loads(plain[1])
    assert (doc["digest"], doc["sent_digest"]) == (plain_doc["digest"], plain_doc["sent_digest"])
    assert legacy_digest(doc) == legacy_digest(plain_doc)
    assert version_of(doc) == version_of(plain_doc)
    decoded = decode_classified(placed[1])
    assert decoded.input == (3, 1234)
    assert decoded.model_dump_json().encode() == plain[1]  # not written back out
    gone = validate_report(
        json.dumps(
            {"source": "pkf-op-1", "report_id": "r1", "revision": 1, "withdrawn": True}
        ).encode(),
        now=NOW,
    )
    assert isinstance(gone, WithdrawnReport)
    routed = classify_report(gone, NOW, CLASSIFIER, (0, 7))
    assert isinstance(routed, tuple)
    withdrawal = decode_classified(routed[1])
    assert isinstance(withdrawal, ReportWithdrawal) and withdrawal.input == (0, 7)


def test_the_carried_digest_tells_a_resend_from_a_change() -> None:
    first = version_of(ingested())
    assert isinstance(first, ReportVersion)
    later = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert version_of(ingested(_received=later)).digest == first.digest  # arrival: no content
    assert version_of(ingested(revision=2)).digest == first.digest  # nor the revision
    assert version_of(ingested(reported_at="2026-03-01T11:10:00Z")).digest == first.digest
    for change in (
        {"casualties": {"killed": 1}},
        {"description": "обстрел!"},
        {"claimant": "AM MoD"},
        {"occurred_at": "2026-03-01T15:01:00+04:00"},
        {"location": {"place": "Shusha", "precision": "region"}},  # town by default
    ):
        assert version_of(ingested(**change)).digest != first.digest, change


def test_document_digest_is_the_digest_of_the_content_fields_in_order() -> None:
    """The digest identity entries hold: it must not change with how it is computed."""
    report = validate_report(
        json.dumps(
            {
                "report_id": "r9",
                "source": "pkf-op-1",
                "source_type": "observation_post",
                "occurred_at": "2026-03-01T11:00:00+00:00",
                "reported_at": "2026-03-01T11:05:00+00:00",
                "location": {"lat": 39.8, "lon": 46.75},
                "category": "drone_strike",
                "revision": 4,
                "casualties": {"killed": 2, "civilian": True},
            }
        ).encode(),
        now=NOW,
    )
    assert isinstance(report, Report), report
    fields = CLASSIFIER.fields(report, NOW)
    before = _NOT_CONTENT & fields.keys()
    assert before  # the test covers dropped keys
    assert fields["time_of_day"] is None
    # a time of day stated by none leaves the content as it was before it was kept
    content = {k: v for k, v in fields.items() if k not in _NOT_CONTENT | {"time_of_day"}}
    expected = hashlib.blake2b(
        orjson.dumps(content, option=orjson.OPT_UTC_Z), digest_size=DIGEST_SIZE
    ).digest()
    assert document_digest(fields) == expected
    assert _NOT_CONTENT & fields.keys() == before  # the fields themselves are left as given


def test_a_version_keeps_the_target_and_the_named_place() -> None:
    named = version_of(classified(target="Azerbaijani Armed Forces"))
    assert isinstance(named, ReportVersion)
    assert (named.target, named.place) == ("az", "Shusha")
    civilians = version_of(classified(target="civilians", location={"lat": 39.76, "lon": 46.75}))
    assert isinstance(civilians, ReportVersion)
    assert (civilians.target, civilians.place) == ("civilians", None)
    # no target, or a name no alias list knows (`unknown`): no evidence
    for doc in (classified(), classified(target="the adversary's positions")):
        v = version_of(doc)
        assert isinstance(v, ReportVersion) and v.target is None
    # a document written before they were read: the same version as one naming neither
    old = {k: v for k, v in classified().items() if k not in ("target", "place")}
    v = version_of(old)
    assert isinstance(v, ReportVersion) and (v.target, v.place) == (None, None)


def sent_digest(raw: bytes) -> bytes:
    report = validate_report(raw, now=NOW)
    assert isinstance(report, Report), report
    return report_digest(report)


@given(st.permutations([*SENT, "perpetrator"]), st.sampled_from(["+00:00", "Z", "+04:00"]))
def test_the_sent_digest_is_of_the_content_not_its_spelling(order: list[str], offset: str) -> None:
    """Key order, spacing, the time's offset (one instant), what is not content
    (`revision`, `reported_at`) and a default given or not: one digest."""
    sent = SENT | {"perpetrator": "AZ MoD"}
    base = sent_digest(json.dumps(sent).encode())
    doc = {k: sent[k] for k in order}
    if offset == "+04:00":
        doc["occurred_at"] = "2026-03-01T15:00:00+04:00"
    else:
        doc["occurred_at"] = "2026-03-01T11:00:00" + offset
    doc |= {"revision": 3, "reported_at": "2026-03-01T11:30:00Z", "time_precision": "exact"}
    assert sent_digest(json.dumps(doc, indent=2).encode()) == base
    assert sent_digest(json.dumps(sent | {"casualties": {"killed": 0}}).encode()) == base


@pytest.mark.parametrize(
    "change",
    [
        {"report_id": "r2"},
        {"source": "pkf-op-2"},
        {"source_type": "patrol"},
        {"occurred_at": "2026-03-01T11:01:00+00:00"},
        {"location": {"place": "Shushi"}},  # one place to the gazetteer, not to the source
        {"location": {"place": "Shusha", "lat": 39.758, "lon": 46.748}},
        {"category": "heavy_weapons_fire"},
        {"perpetrator": "az"},  # the same code to the classifier, other words as sent
        {"target": "civilians"},
        {"casualties": {"wounded": 1}},
        {"casualties": {"civilian": True}},
        {"description": "two bursts"},
        {"claimant": "am"},
        {"time_precision": "day"},
    ],
)
def test_the_sent_digest_changes_with_every_content_field(change: dict[str, object]) -> None:
    assert sent_digest(json.dumps(SENT | change).encode()) != sent_digest(json.dumps(SENT).encode())


def test_a_day_report_keeps_the_time_of_day_its_text_states() -> None:
    day = {"time_precision": "day", "description": "Shelling near Shusha at around 14:35."}
    doc = classified(**day)
    assert doc["time_of_day"] == "14:35-14:35"
    v = version_of(doc)
    assert isinstance(v, ReportVersion) and v.time_of_day == (875, 875)
    evening = version_of(classified(time_precision="day", description="fire overnight"))
    assert isinstance(evening, ReportVersion) and evening.time_of_day == (-180, 360)
    # an exact time says more than its text; a week or month says no day; no text, nothing
    for changes in (
        {"description": "at around 14:35"},
        {"time_precision": "week", "description": "at around 14:35"},
        {"time_precision": "day"},
    ):
        doc = classified(**changes)
        assert doc["time_of_day"] is None
        v = version_of(doc)
        assert isinstance(v, ReportVersion) and v.time_of_day is None
    # it is content: another stated time is another version
    other = version_of(classified(**(day | {"description": "Shelling near Shusha at 18:00."})))
    assert isinstance(other, ReportVersion)
    assert v.digest != other.digest != version_of(classified(**day)).digest
    # a document written before it was kept reads as stating none
    old = {k: v for k, v in classified(**day).items() if k != "time_of_day"}
    assert version_of(old).time_of_day is None  # type: ignore[union-attr]
    with pytest.raises(BadDocument, match="time of day"):
        version_of(classified(**day) | {"time_of_day": "noon"})


def test_an_upsert_carries_the_time_of_day_only_when_stated() -> None:
    day = {"time_precision": "day", "description": "Shelling near Shusha in the evening."}
    for doc in (classified(**day), classified()):
        version = version_of(doc)
        assert isinstance(version, ReportVersion)
        raw = upsert_message(version, False, "i", 7)
        fields = orjson.loads(raw)["v"]
        assert len(fields) == (17 if version.time_of_day is None else 18)
        assert read_message(raw) == Upsert(version, False, "i", 7)
    timed = version_of(classified(**day))
    assert isinstance(timed, ReportVersion)
    raw = upsert_message(timed, False, "i", 7)
    for junk in (b"[1020]", b'"17:00-23:00"', b"[1380,1020]", b"[1020.0,1380]"):
        bad = raw.replace(b"[1020,1380]", junk)
        assert bad != raw
        with pytest.raises(BadDocument, match="time of day"):
            read_message(bad)


def test_internal_format_3_documents_leave_the_time_of_day_out() -> None:
    """CEASEFIRE_INTERNAL_FORMAT=3 (a rolling upgrade from workers before the time of day):
    the classifier writes documents as they did, so nothing downstream carries it."""
    old_form = Classifier(ZoneCatalogue.load(), Gazetteer.load(), time_of_day=False)
    for changes in ({}, {"time_precision": "day", "description": "at around 14:35"}):
        report = validate_report(json.dumps(SENT | changes).encode(), now=NOW)
        assert isinstance(report, Report), report
        fields = old_form.fields(report, NOW)
        assert "time_of_day" not in fields
        new = CLASSIFIER.fields(report, NOW)
        if new["time_of_day"] is None:  # stating none: the same content either way
            assert document_digest(fields) == document_digest(new)
        v = version_of(json.loads(encode_fields(fields)))
        assert isinstance(v, ReportVersion) and v.time_of_day is None


def test_a_time_in_another_offset_digests_as_the_same_instant() -> None:
    """A re-send whose time is written in another UTC offset (one instant) is a duplicate:
    its classified document digests alike, so the zone stage does not count it
    `reclassified` (it did, and published a new version each time)."""
    digests = set()
    for occurred in (
        "2026-03-01T08:00:00Z",
        "2026-03-01T11:00:00+03:00",
        "2026-03-01T04:00:00-04:00",
    ):
        doc = json.dumps(SENT | {"occurred_at": occurred}).encode()
        report = validate_report(doc, now=NOW)
        assert isinstance(report, Report), report
        digests.add(document_digest(CLASSIFIER.fields(report, NOW)))
    assert len(digests) == 1
    later = validate_report(
        json.dumps(SENT | {"occurred_at": "2026-03-01T08:01:00Z"}).encode(), now=NOW
    )
    assert isinstance(later, Report)
    assert document_digest(CLASSIFIER.fields(later, NOW)) not in digests


def test_a_version_keeps_the_names_that_matched_no_party_and_an_upsert_carries_them() -> None:
    """SPEC.md: an unmatched name is kept verbatim. The classified document has it
    (`perpetrator_raw`, `target_raw`, `claimant_raw`); the version keeps it, and the upsert
    carries it under a key of its own (older zone stages ignore it). A zone stage of format
    5 (`keep_raw=False`) leaves it out, so that its changelog rows are those old workers
    read."""
    named = version_of(
        classified(perpetrator="Wagner mercenaries", target="the village", claimant="AZ MoD")
    )
    assert isinstance(named, ReportVersion)
    assert (named.perpetrator, named.target) == ("unknown", None)
    assert named.names_raw == ("Wagner mercenaries", "the village", None)
    plain = version_of(classified(perpetrator="Armenian Armed Forces"))
    assert isinstance(plain, ReportVersion) and plain.names_raw is None
    # "unknown" as a report spells it names no one (its document keeps it as raw)
    spelled = version_of(classified(perpetrator="Unknown"))
    assert isinstance(spelled, ReportVersion) and spelled.names_raw is None
    raw = upsert_message(named, False, "i", 7)
    assert orjson.loads(raw)["raw"] == ["Wagner mercenaries", "the village", None]
    assert len(orjson.loads(raw)["v"]) == 17  # the fields as before
    assert read_message(raw) == Upsert(named, False, "i", 7)
    kept_out = read_message(raw, keep_raw=False)
    assert isinstance(kept_out, Upsert) and kept_out.version.names_raw is None
    assert b'"raw"' not in upsert_message(plain, False, "i", 7)
    for junk in (b'"x"', b'["a",null]', b"[1,null,null]"):
        bad = raw.replace(b'["Wagner mercenaries","the village",null]', junk)
        assert bad != raw
        with pytest.raises(BadDocument, match="raw"):
            read_message(bad)
