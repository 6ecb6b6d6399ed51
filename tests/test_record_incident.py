"""An incident's fields from its reports: verification, attribution, claims, casualties,
category, and what a book publishes when its incidents change."""

from __future__ import annotations

from schemas.codes import Category, Severity, SourceType, TimePrecision, Verification
from schemas.incident import incident_id_for
from streams.record.book import IncidentBook
from streams.record.incident import (
    CATEGORY_ORDER,
    CONTESTED,
    IncidentRecord,
    Status,
    derive,
    derive_many,
    verification_of,
)
from streams.record.model import Withdrawal
from streams.record.record import Batch, Record
from streams.record.tally import cell_of
from streams.tallies.state import IncidentTally
from tests.published import feed
from tests.record_helpers import MIN, rv

PS = SourceType.PARTY_STATEMENT


def test_verification_by_source_type_and_claimant() -> None:
    expected = {
        SourceType.OBSERVATION_POST: Verification.OBSERVED,
        SourceType.PATROL: Verification.OBSERVED,
        SourceType.SENSOR: Verification.OBSERVED,
        SourceType.MONITORING_CENTRE: Verification.OBSERVED,
        SourceType.MEDIA: Verification.REPORTED,
        SourceType.NGO: Verification.REPORTED,
        SourceType.CIVILIAN: Verification.REPORTED,
        SourceType.DATASET: Verification.REPORTED,
        SourceType.PARTY_STATEMENT: Verification.ALLEGED,
    }
    for source_type, verification in expected.items():
        assert verification_of(rv("s", "1", source_type=source_type)) is verification
    # A report made on a party's behalf is that party's allegation, whoever carries it.
    assert verification_of(rv("s", "1", source_type=SourceType.MEDIA, claimant="az")) is (
        Verification.ALLEGED
    )


def test_one_report_derives_as_the_general_rule() -> None:
    # `derive` inlines attribution and claims for one report: it must agree with the rule.
    for source_type in SourceType:
        for claimant in (None, "az", "unknown"):
            for perpetrator in ("az", "am", "unknown"):
                for killed, wounded in ((0, 0), (0, 2), (1, 0)):
                    r = rv(
                        "s",
                        "1",
                        source_type=source_type,
                        claimant=claimant,
                        perpetrator=perpetrator,
                        killed=killed,
                        wounded=wounded,
                    )
                    assert derive([r]) == derive_many([r])


def test_an_incident_is_as_verified_as_its_strongest_report() -> None:
    f = derive(
        [
            rv("az-mod", "1", source_type=PS, claimant="az"),
            rv("news", "2", source_type=SourceType.MEDIA),
        ]
    )
    assert f.verification is Verification.REPORTED
    f = derive([rv("az-mod", "1", source_type=PS, claimant="az"), rv("op", "2")])
    assert f.verification is Verification.OBSERVED


def test_mutual_accusations_are_contested() -> None:
    az = rv("az-mod", "1", source_type=PS, claimant="az", perpetrator="am")
    am = rv("am-mod", "2", source_type=PS, claimant="am", perpetrator="az")
    f = derive([az, am])
    assert f.attribution == CONTESTED
    assert dict(f.claims) == {"az": "am", "am": "az"}
    assert f.verification is Verification.ALLEGED


def test_observed_reports_decide_attribution_over_claims() -> None:
    az = rv("az-mod", "1", source_type=PS, claimant="az", perpetrator="am")
    am = rv("am-mod", "2", source_type=PS, claimant="am", perpetrator="az")
    seen = rv("op", "3", perpetrator="az")
    f = derive([az, am, seen])
    assert f.attribution == "az"
    assert dict(f.claims) == {"az": "am", "am": "az"}  # the claims stay on record


def test_observed_reports_naming_different_parties_are_contested() -> None:
    f = derive([rv("op1", "1", perpetrator="az"), rv("op2", "2", perpetrator="am")])
    assert f.attribution == CONTESTED


def test_agreeing_claims_attribute_and_unnamed_ones_do_not_count() -> None:
    f = derive(
        [
            rv("op", "1"),  # observed, names no one
            rv("news", "2", source_type=SourceType.MEDIA, perpetrator="nk"),
            rv("az-mod", "3", source_type=PS, claimant="az", perpetrator="nk"),
            rv("am-mod", "4", source_type=PS, claimant="am"),
        ]
    )
    assert f.attribution == "nk"
    assert dict(f.claims) == {"az": "nk", "am": "unknown"}


def test_nobody_named_is_unknown() -> None:
    assert derive([rv("op", "1"), rv("news", "2", source_type=SourceType.MEDIA)]).attribution == (
        "unknown"
    )


def test_a_party_statement_without_claimant_is_claimed_by_unknown() -> None:
    f = derive([rv("statement", "1", source_type=PS, perpetrator="az")])
    assert dict(f.claims) == {"unknown": "az"}
    assert f.attribution == "az"


def test_casualties_are_never_summed() -> None:
    f = derive([rv("op1", "1", killed=3, wounded=1), rv("op2", "2", killed=3, wounded=4)])
    assert (f.killed, f.wounded) == (3, 4)


def test_casualties_come_from_the_most_verified_reports() -> None:
    claims = [
        rv("az-mod", "1", source_type=PS, claimant="az", killed=12),
        rv("am-mod", "2", source_type=PS, claimant="am", wounded=30),
    ]
    f = derive([*claims, rv("op", "3", killed=1)])
    assert (f.killed, f.wounded) == (1, 0)
    f = derive(claims)
    assert (f.killed, f.wounded) == (12, 30)


def test_category_is_the_most_severe_and_severity_follows_casualties() -> None:
    f = derive(
        [
            rv("op1", "1", category=Category.SMALL_ARMS_FIRE),
            rv("op2", "2", category=Category.DRONE_STRIKE),
            rv("op3", "3", category=Category.HEAVY_WEAPONS_FIRE, wounded=1),
        ]
    )
    assert f.category is Category.DRONE_STRIKE
    assert f.severity is Severity.HIGH
    assert derive([rv("op", "1", category=Category.SMALL_ARMS_FIRE)]).severity is Severity.MEDIUM
    assert derive([rv("op", "1", category=Category.SMALL_ARMS_FIRE, killed=1)]).severity is (
        Severity.CRITICAL
    )
    fire = [c for c in CATEGORY_ORDER if c.value.endswith(("fire", "strike"))]
    assert fire == [Category.DRONE_STRIKE, Category.HEAVY_WEAPONS_FIRE, Category.SMALL_ARMS_FIRE]


def test_time_zone_and_reports_in_canonical_order() -> None:
    late = rv("b", "2", t=10 * MIN, revision=3)
    early = rv("a", "1", t=0)
    f = derive([late, early])
    assert f.occurred == early.occurred
    assert f.zone == "shusha"
    assert f.reports == (("a", "1", 0), ("b", "2", 3))


def test_document_has_the_spec_fields() -> None:
    f = derive([rv("op", "1", perpetrator="az")])
    doc = IncidentRecord("id-1", 2, Status.OPEN, None, f).document()
    assert set(doc) == {
        "incident_id",
        "version",
        "status",
        "merged_into",
        "occurred_at",
        "zone",
        "category",
        "severity",
        "verification",
        "attribution",
        "claims",
        "killed",
        "wounded",
        "reports",
        # beside SPEC.md's list: the precision of `occurred_at`, and the names that matched
        # no party, which SPEC.md's parties section keeps verbatim in the incident
        "time_precision",
        "perpetrator_raw",
    }
    assert doc["occurred_at"] == "2023-11-14T22:13:20+00:00"
    assert doc["reports"] == [{"source": "op", "report_id": "1", "revision": 0}]
    assert (doc["time_precision"], doc["perpetrator_raw"]) == ("exact", None)


def test_the_names_that_matched_no_party_are_kept_in_the_incident() -> None:
    """SPEC.md: an unmatched name maps to `unknown` and is kept verbatim in the incident as
    `perpetrator_raw`. Of several reports: each distinct name once, in canonical order; the
    time precision is that of the report `occurred_at` is taken from."""
    wagner = ("Wagner mercenaries", None, None)
    one = rv("civ", "1", names_raw=wagner)
    assert derive([one]).perpetrator_raw == "Wagner mercenaries"
    day = rv("news", "2", t=MIN, names_raw=("little green men", "the village", None))
    again = rv("tv", "3", t=2 * MIN, names_raw=wagner, time_precision=TimePrecision.DAY)
    f = derive([again, day, one])
    assert f == derive_many([again, day, one])
    assert f.perpetrator_raw == "Wagner mercenaries; little green men"
    assert f.time_precision is TimePrecision.EXACT
    assert derive([again]).time_precision is TimePrecision.DAY
    assert derive([rv("op", "4")]).perpetrator_raw is None
    doc = IncidentRecord("id-1", 1, Status.OPEN, None, f).document()
    assert doc["perpetrator_raw"] == "Wagner mercenaries; little green men"


# -- publishing -----------------------------------------------------------------------


def test_one_event_reported_three_times_is_one_incident() -> None:
    record = Record()
    shelling = [
        rv("op-12", "1", perpetrator="az", wounded=1),
        rv(
            "az-mod",
            "2",
            t=5 * MIN,
            km=1,
            source_type=PS,
            claimant="az",
            perpetrator="am",
            killed=4,
        ),
        rv(
            "am-mod",
            "3",
            t=8 * MIN,
            km=1.5,
            source_type=PS,
            claimant="am",
            perpetrator="az",
            killed=2,
        ),
    ]
    batch = Batch()
    for r in shelling:
        batch.add(record.apply(r))
    (incident,) = record.incidents()
    assert incident.incident_id == incident_id_for("op-12", "1")
    assert incident.version == 3
    f = incident.fields
    assert (f.attribution, f.verification, f.killed, f.wounded) == (
        "az",
        Verification.OBSERVED,
        0,
        1,
    )
    assert feed(IncidentTally(), batch.incidents.values()) == {cell_of(f): [1, 3, 0, 1]}
    assert list(batch.incidents) == [incident.incident_id]


def test_a_late_earlier_report_renames_the_incident_and_the_old_id_points_to_it() -> None:
    record = Record()
    record.apply(rv("op-12", "b", t=10 * MIN))
    step = record.apply(rv("op-7", "a", t=0))
    new_id, old_id = incident_id_for("op-7", "a"), incident_id_for("op-12", "b")
    assert [(i.incident_id, i.version, i.status, i.merged_into) for i in step.incidents] == [
        (new_id, 1, Status.OPEN, None),
        (old_id, 2, Status.MERGED, new_id),
    ]


def test_withdrawing_every_report_withdraws_the_incident() -> None:
    record = Record()
    published = IncidentTally()
    feed(published, record.apply(rv("op-12", "1")).incidents)
    feed(published, record.apply(rv("op-7", "2", t=MIN)).incidents)
    step = record.apply(Withdrawal("op-12", "1", 1))
    feed(published, step.incidents)
    # The incident lives on under its remaining report; the old id points to it.
    assert [(i.status, i.merged_into) for i in step.incidents] == [
        (Status.OPEN, None),
        (Status.MERGED, incident_id_for("op-7", "2")),
    ]
    step = record.apply(Withdrawal("op-7", "2", 1))
    (last,) = step.incidents
    assert (last.incident_id, last.status, last.merged_into) == (
        incident_id_for("op-7", "2"),
        Status.WITHDRAWN,
        None,
    )
    assert last.fields.reports == (("op-7", "2", 0),)  # what it held when withdrawn
    assert list(record.incidents()) == []
    assert record.tally() == {}
    assert feed(published, step.incidents) == {cell_of(last.fields): [-1, -1, 0, 0]}


def test_a_revision_moves_the_tally_cell() -> None:
    record = Record()
    first = record.apply(
        rv("acled", "AZE1", source_type=SourceType.DATASET, killed=1, perpetrator="az")
    )
    fixed = record.apply(
        rv(
            "acled",
            "AZE1",
            revision=1_700_000_500,
            source_type=SourceType.DATASET,
            killed=49,
            perpetrator="am",
        )
    )
    published = IncidentTally()
    (cell,) = feed(published, first.incidents)
    assert cell[2:] == ("az", "heavy_weapons_fire", "reported")
    moved = (cell[0], cell[1], "am", cell[3], cell[4])
    assert feed(published, fixed.incidents) == {cell: [-1, -1, -1, 0], moved: [1, 1, 49, 0]}
    (incident,) = record.incidents()
    assert (incident.fields.killed, incident.version) == (49, 2)


def test_a_move_between_zones_takes_the_report_out_of_the_first() -> None:
    record = Record()
    published = IncidentTally()
    feed(published, record.apply(rv("op", "1", zone="aghdam")).incidents)
    step = record.apply(rv("op", "1", revision=1, zone="shusha"))
    assert [(i.status, i.fields.zone) for i in step.incidents] == [
        (Status.WITHDRAWN, "aghdam"),
        (Status.OPEN, "shusha"),
    ]
    assert {cell[1]: counts for cell, counts in feed(published, step.incidents).items()} == {
        "aghdam": [-1, -1, 0, 0],
        "shusha": [1, 1, 0, 0],
    }


def test_the_book_ignores_replayed_and_older_operations() -> None:
    book = IncidentBook()
    v1, v2 = rv("op", "1", revision=1), rv("op", "1", revision=2, t=MIN)
    assert book.upsert(v1).incidents
    assert book.upsert(v2).incidents
    assert not book.upsert(v1).incidents  # replayed: older than what it holds
    assert book.remove("op", "1", 3).incidents
    replay = [book.upsert(v2), book.remove("op", "1", 3), book.upsert(v1)]
    assert all(not c.incidents and not c.entries for c in replay)
    assert book.upsert(rv("op", "1", revision=4)).incidents  # reinstated
    assert len(book) == 1
