"""An incident's fields, derived from its current reports (SPEC.md, "Incidents").

Pure functions of the member reports, so an incident reads the same whatever order its
reports arrived in. The rules (docs/record.md):

* verification of a report: `alleged` when it names a claimant (a party speaks through it),
  else by source type: observation posts, patrols, sensors and the monitoring centre ->
  `observed`; media, NGOs, civilians and datasets -> `reported`; party statements ->
  `alleged`. An incident's verification is the strongest of its reports'.
* attribution: the party the observed reports name; if they name different parties,
  `contested`. With no observed report naming a party: the one party all other reports that
  name one name; different parties -> `contested`; none named -> `unknown`. A report naming
  `unknown` names no one.
* claims: claimant -> the party it accuses, for the alleged reports (`unknown` as claimant
  for a party statement that does not say whose; `contested` if one claimant's reports
  accuse different parties).
* category: the most severe in `CATEGORY_ORDER` (linking keeps an incident's categories equal
  or all fire, so in practice drone strike > heavy weapons > small arms).
* killed, wounded: the largest figure among the reports of the incident's verification tier,
  each field on its own; never a sum (several reports of one event count its casualties
  once), and never a figure from a weaker tier (an `observed` incident's casualties are what
  observers reported, not what a party claims).
* severity: the category's, raised by those casualties (`streams.classify.severity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from schemas.codes import (
    VERIFICATION_BY_SOURCE_TYPE,
    Category,
    Party,
    Severity,
    TimePrecision,
    Verification,
)
from schemas.incident import incident_id_for
from streams.classify.severity import BASE_SEVERITY, severity
from streams.record.model import SET_FIELD, Ident, ReportVersion

CONTESTED = "contested"
UNKNOWN = Party.UNKNOWN.value

#: Most severe first: by base severity, then by harm within a level. The one place that
#: says which category an incident of several takes.
CATEGORY_ORDER: tuple[Category, ...] = (
    Category.ATTACK_ON_PEACEKEEPERS,
    Category.DRONE_STRIKE,
    Category.HEAVY_WEAPONS_FIRE,
    Category.CIVILIAN_HARM,
    Category.POSITIONAL_ADVANCE,
    Category.MINE_INCIDENT,
    Category.SMALL_ARMS_FIRE,
    Category.DETENTION,
    Category.PROPERTY_DESTRUCTION,
    Category.OBSTRUCTION_OF_MOVEMENT,
    Category.AIRSPACE_VIOLATION,
    Category.ENGINEERING_WORKS,
    Category.OTHER,
)
_CATEGORY_RANK = {c: i for i, c in enumerate(CATEGORY_ORDER)}

#: Strongest first.
VERIFICATION_ORDER: tuple[Verification, ...] = (
    Verification.OBSERVED,
    Verification.REPORTED,
    Verification.ALLEGED,
)
_VERIFICATION_RANK = {v: i for i, v in enumerate(VERIFICATION_ORDER)}
_ALLEGED = Verification.ALLEGED


def _check_category_order() -> None:
    if set(CATEGORY_ORDER) != set(Category) or len(CATEGORY_ORDER) != len(Category):
        raise AssertionError("CATEGORY_ORDER must list every category once")
    ranks = [BASE_SEVERITY[c].rank for c in CATEGORY_ORDER]
    if ranks != sorted(ranks, reverse=True):
        raise AssertionError("CATEGORY_ORDER must not put a category above a more severe one")


_check_category_order()


def verification_of(r: ReportVersion) -> Verification:
    if r.claimant is not None:
        return Verification.ALLEGED
    return VERIFICATION_BY_SOURCE_TYPE[r.source_type]


def _one_or_contested(named: set[str]) -> str:
    if not named:
        return UNKNOWN
    if len(named) == 1:
        return next(iter(named))
    return CONTESTED


def attribution(members: Sequence[ReportVersion]) -> str:
    observed: set[str] = set()
    others: set[str] = set()
    for r in members:
        if r.perpetrator == UNKNOWN:
            continue
        (observed if verification_of(r) is Verification.OBSERVED else others).add(r.perpetrator)
    return _one_or_contested(observed or others)


def claims(members: Sequence[ReportVersion]) -> tuple[tuple[str, str], ...]:
    accused: dict[str, set[str]] = {}
    for r in members:
        if verification_of(r) is Verification.ALLEGED:
            named = accused.setdefault(r.claimant or UNKNOWN, set())
            if r.perpetrator != UNKNOWN:
                named.add(r.perpetrator)
    return tuple(sorted((c, _one_or_contested(named)) for c, named in accused.items()))


@dataclass(frozen=True, slots=True, init=False)
class IncidentFields:
    """Everything of an incident that follows from its reports."""

    occurred: float  # earliest report, unix seconds
    zone: str
    category: Category
    severity: Severity
    verification: Verification
    attribution: str  # a party code or "contested"
    claims: tuple[tuple[str, str], ...]  # (claimant, accused), sorted
    killed: int
    wounded: int
    reports: tuple[tuple[str, str, int], ...]  # (source, report_id, revision), canonical order
    #: how precisely `occurred` is known: the precision of the report it is taken from
    time_precision: TimePrecision = TimePrecision.EXACT
    #: the perpetrator names its reports gave that matched no party, as given, distinct, in
    #: canonical order, joined by "; " (SPEC.md: kept verbatim); None when there is none
    perpetrator_raw: str | None = None

    def __init__(
        self,
        occurred: float,
        zone: str,
        category: Category,
        severity: Severity,
        verification: Verification,
        attribution: str,
        claims: tuple[tuple[str, str], ...],
        killed: int,
        wounded: int,
        reports: tuple[tuple[str, str, int], ...],
        time_precision: TimePrecision = TimePrecision.EXACT,
        perpetrator_raw: str | None = None,
    ) -> None:
        # Written out: the generated __init__ of a frozen dataclass looks `object.__setattr__`
        # up anew for every field (half the cost of these; one per change of an incident).
        set_ = SET_FIELD
        set_(self, "occurred", occurred)
        set_(self, "zone", zone)
        set_(self, "category", category)
        set_(self, "severity", severity)
        set_(self, "verification", verification)
        set_(self, "attribution", attribution)
        set_(self, "claims", claims)
        set_(self, "killed", killed)
        set_(self, "wounded", wounded)
        set_(self, "reports", reports)
        set_(self, "time_precision", time_precision)
        set_(self, "perpetrator_raw", perpetrator_raw)


_TIME_RANK = {p: i for i, p in enumerate(TimePrecision)}  # exact, day, week, month


def derive(members: Sequence[ReportVersion]) -> IncidentFields:
    """The fields of the incident made of `members` (non-empty, one zone)."""
    if not members:
        raise ValueError("an incident has at least one report")
    if len(members) == 1:  # most incidents, and every one of a recovery's singles: no sorting
        r = members[0]
        # `attribution` and `claims` of one report, inlined (the hot path of every change):
        # the party it names, or unknown; a claim only when it is alleged.
        if r.claimant is not None:
            verification = _ALLEGED
        else:
            verification = VERIFICATION_BY_SOURCE_TYPE[r.source_type]
        perpetrator = r.perpetrator
        # by position, in the order of the fields (ten keywords were a third of the call)
        return IncidentFields(
            r.occurred,
            r.zone,
            r.category,
            severity(r.category, r.killed, r.wounded),
            verification,
            perpetrator,  # attribution
            ((r.claimant or UNKNOWN, perpetrator),) if verification is _ALLEGED else (),  # claims
            r.killed,
            r.wounded,
            ((r.source, r.report_id, r.revision),),  # reports
            r.time_precision,
            None if r.names_raw is None else r.names_raw[0] or None,
        )
    return derive_many(members)


def derive_many(members: Sequence[ReportVersion]) -> IncidentFields:
    """`derive` without its shortcut for one report (the tests' reference)."""
    ordered = sorted(members, key=lambda r: (r.occurred, r.source, r.report_id))
    verification = min((verification_of(r) for r in ordered), key=_VERIFICATION_RANK.__getitem__)
    tier = [r for r in ordered if verification_of(r) is verification]
    killed = max(r.killed for r in tier)
    wounded = max(r.wounded for r in tier)
    category = min((r.category for r in ordered), key=_CATEGORY_RANK.__getitem__)
    # The earliest report that says when it happened most precisely: a report that gives
    # only the day, week or month must not move a precisely timed event back by weeks
    # (its tallies' hour, the alert rules' max_age).
    precision = min((r.time_precision for r in ordered), key=_TIME_RANK.__getitem__)
    return IncidentFields(
        occurred=next(r.occurred for r in ordered if r.time_precision is precision),
        zone=ordered[0].zone,
        category=category,
        severity=severity(category, killed, wounded),
        verification=verification,
        attribution=attribution(ordered),
        claims=claims(ordered),
        killed=killed,
        wounded=wounded,
        reports=tuple((r.source, r.report_id, r.revision) for r in ordered),
        time_precision=precision,
        perpetrator_raw="; ".join(
            dict.fromkeys(
                r.names_raw[0] for r in ordered if r.names_raw is not None and r.names_raw[0]
            )
        )
        or None,
    )


class Status(StrEnum):
    OPEN = "open"
    WITHDRAWN = "withdrawn"
    MERGED = "merged"


#: Incident ids the identity stage worked out for the reports of the current step, by report
#: identity (`give_incident_id`): each exactly `incident_id_for` of its identity.
_GIVEN: dict[Ident, str] = {}


def incident_id(anchor: Ident) -> str:
    """An incident is named after its first report in canonical order (SPEC.md: "the id of
    its earliest report"), with the uuid5 ids the monitor has always published."""
    return _GIVEN.get(anchor) or _incident_id(anchor)


@lru_cache(maxsize=65_536)
def _incident_id(anchor: Ident) -> str:
    return incident_id_for(anchor[0], anchor[1])


def give_incident_id(ident: Ident, iid: str) -> None:
    """The id of an incident `ident` would open, worked out elsewhere: a lookup instead of a
    uuid5 on the zone stage's path."""
    _GIVEN[ident] = iid


def forget_given_incident_ids() -> None:
    """At a step's start: the last step's ids go (memory stays a step's)."""
    _GIVEN.clear()


@dataclass(frozen=True, slots=True, init=False)
class IncidentRecord:
    """One published version of an incident. A `merged` or `withdrawn` record carries the
    fields of the incident's last open version."""

    incident_id: str
    version: int
    status: Status
    merged_into: str | None
    fields: IncidentFields

    def __init__(
        self,
        incident_id: str,
        version: int,
        status: Status,
        merged_into: str | None,
        fields: IncidentFields,
    ) -> None:
        # written out, as IncidentFields' (one per incident version published)
        set_ = SET_FIELD
        set_(self, "incident_id", incident_id)
        set_(self, "version", version)
        set_(self, "status", status)
        set_(self, "merged_into", merged_into)
        set_(self, "fields", fields)

    def document(self) -> dict[str, Any]:
        """The SPEC.md shape, for `ceasefire.incidents` and the API."""
        f = self.fields
        # str() of a StrEnum member is its value, at a quarter of the cost of `.value` (a
        # Python-level property); this runs for every incident version published.
        return {
            "incident_id": self.incident_id,
            "version": self.version,
            "status": str(self.status),
            "merged_into": self.merged_into,
            "occurred_at": datetime.fromtimestamp(f.occurred, UTC).isoformat(),
            "time_precision": str(f.time_precision),
            "zone": f.zone,
            "category": str(f.category),
            "severity": str(f.severity),
            "verification": str(f.verification),
            "attribution": f.attribution,
            "perpetrator_raw": f.perpetrator_raw,
            "claims": dict(f.claims),
            "killed": f.killed,
            "wounded": f.wounded,
            "reports": [
                {"source": s, "report_id": rid, "revision": rev} for s, rid, rev in f.reports
            ],
        }
