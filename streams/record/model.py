"""The plain data the record works on: one version of a report, a withdrawal, identities.

The stage builds these from a validated, classified report; everything in this package is
pure over them (no broker, no clock, no I/O), so it is unit- and property-tested alone.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.codes import Category, LocationPrecision, Party, SourceType, TimePrecision

#: (source, report_id): what identifies a report (SPEC.md).
Ident = tuple[str, str]

#: Revisions are stored as 8 unsigned bytes; ACLED's `timestamp` (unix seconds) fits easily.
MAX_REVISION = 2**63 - 1

DIGEST_SIZE = 8


def identity_key(source: str, report_id: str) -> bytes:
    """16-byte digest of (source, report_id): the compact key identity state is kept under.

    128 bits make a collision among even billions of identities negligible (~1e-20), so the
    digest can stand for the identity for good without keeping the strings."""
    return hashlib.blake2b(
        f"{source}\x1f{report_id}".encode(), digest_size=16, person=b"ceasefire-id"
    ).digest()


def content_digest(document: Mapping[str, Any]) -> bytes:
    """8-byte digest of a report's content as sent, for telling a re-send (same digest) from
    a conflicting one (other digest) at an equal revision.

    The stage passes the validated report minus `revision`; keys are sorted, so field order
    and envelopes do not matter. 64 bits: a conflicting re-send passes as a duplicate with
    probability 2^-64."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=DIGEST_SIZE).digest()


#: The content of every withdrawal: a withdrawal says only "withdrawn", so two withdrawals at
#: one revision are duplicates whatever else they carry.
WITHDRAWN_DIGEST = b"\xff" * DIGEST_SIZE

#: How the written-out `__init__`s of the record's frozen dataclasses set a field
SET_FIELD = object.__setattr__


#: (perpetrator_raw, target_raw, claimant_raw): names that matched no party, as given
RawNames = tuple[str | None, str | None, str | None]


def raw_names(perpetrator: Any, target: Any, claimant: Any) -> RawNames | None:
    """The raw names of a report, None when it has none. "unknown" (the code itself, as a
    report may spell it) names no one: left out. Raises ValueError for a non-text."""
    for name in (perpetrator, target, claimant):
        if name is not None and type(name) is not str:
            raise ValueError(f"a raw name is not a text: {name!r}")
    names = (_named(perpetrator), _named(target), _named(claimant))
    return None if names == (None, None, None) else names


def _named(name: str | None) -> str | None:
    return None if name is None or name.strip().casefold() in ("", "unknown") else name


@dataclass(frozen=True, slots=True, init=False)
class ReportVersion:
    """One revision of a report, classified: what linking, incidents and tallies read.

    `occurred` is unix seconds. `perpetrator` and `claimant` are party codes (`claimant`
    None when the source speaks for itself). `digest` is the content digest of the report as
    sent (`content_digest`); when left empty it is computed from the fields here, which is
    what tests and tools want."""

    source: str
    report_id: str
    revision: int
    source_type: SourceType
    occurred: float
    zone: str
    lat: float
    lon: float
    category: Category
    perpetrator: str = Party.UNKNOWN.value
    claimant: str | None = None
    killed: int = 0
    wounded: int = 0
    time_precision: TimePrecision = TimePrecision.EXACT
    location_precision: LocationPrecision = LocationPrecision.POINT
    digest: bytes = b""
    #: The party the report says was hit (a party code, or `civilians`), None when it names
    #: none; and the gazetteer place it names (`location.place`), None when none. Evidence
    #: for choosing among incidents (`linking.LinkRule.incident_score`); last, so that
    #: positional construction from the fields above keeps working.
    target: str | None = None
    place: str | None = None
    #: The time of day a day-precision report's text states (minutes from its local
    #: midnight, `streams.classify.time_of_day`), None when none: evidence too.
    time_of_day: tuple[int, int] | None = None
    #: Whether its casualties are civilians (`casualties.civilian`): not linking evidence,
    #: but what alert rules match and word, for an incident a change not of this report
    #: left standing as it (`zone_stage.alert_inputs_of`).
    civilian: bool = False
    #: The names as the report gave them, of a perpetrator, target and claimant that matched
    #: no party (`*_raw` of the classified document: SPEC.md keeps them verbatim), None when
    #: every name matched or none was given (most reports: one slot, not three)
    names_raw: RawNames | None = None
    #: (source, report_id), made once: every index of the record keys on this one tuple
    ident: Ident = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        source: str,
        report_id: str,
        revision: int,
        source_type: SourceType,
        occurred: float,
        zone: str,
        lat: float,
        lon: float,
        category: Category,
        perpetrator: str = Party.UNKNOWN.value,
        claimant: str | None = None,
        killed: int = 0,
        wounded: int = 0,
        time_precision: TimePrecision = TimePrecision.EXACT,
        location_precision: LocationPrecision = LocationPrecision.POINT,
        digest: bytes = b"",
        target: str | None = None,
        place: str | None = None,
        time_of_day: tuple[int, int] | None = None,
        civilian: bool = False,
        names_raw: RawNames | None = None,
    ) -> None:
        # Written out (the defaults are the fields' above): the generated __init__ of a
        # frozen dataclass looks `object.__setattr__` up anew for every field, and a
        # __post_init__ then set the interned names a second time. This runs twice per
        # report in the pipeline; it costs 40 % less so.
        if not 0 <= revision <= MAX_REVISION:
            raise ValueError(f"revision {revision} outside 0..{MAX_REVISION}")
        # One copy of each source, zone and party name among a million reports held (each
        # arrives as its own string from JSON).
        intern = sys.intern
        source = intern(source)
        zone = intern(zone)
        perpetrator = intern(perpetrator)
        if claimant is not None:
            claimant = intern(claimant)
        if target is not None:
            target = intern(target)
        if place is not None:
            place = intern(place)
        set_ = SET_FIELD
        set_(self, "source", source)
        set_(self, "report_id", report_id)
        set_(self, "revision", revision)
        set_(self, "source_type", source_type)
        set_(self, "occurred", occurred)
        set_(self, "zone", zone)
        set_(self, "lat", lat)
        set_(self, "lon", lon)
        set_(self, "category", category)
        set_(self, "perpetrator", perpetrator)
        set_(self, "claimant", claimant)
        set_(self, "killed", killed)
        set_(self, "wounded", wounded)
        set_(self, "time_precision", time_precision)
        set_(self, "location_precision", location_precision)
        set_(self, "target", target)
        set_(self, "place", place)
        set_(self, "time_of_day", time_of_day)
        set_(self, "civilian", civilian)
        set_(self, "names_raw", names_raw)
        set_(self, "ident", (source, report_id))
        if not digest:
            digest = content_digest(self._content())
        elif len(digest) != DIGEST_SIZE or digest == WITHDRAWN_DIGEST:
            raise ValueError("digest must be 8 bytes and not the withdrawal digest")
        set_(self, "digest", digest)

    def _content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "source_type": self.source_type.value,
            "occurred": self.occurred,
            "zone": self.zone,
            "lat": self.lat,
            "lon": self.lon,
            "category": self.category.value,
            "perpetrator": self.perpetrator,
            "claimant": self.claimant,
            "killed": self.killed,
            "wounded": self.wounded,
            "time_precision": self.time_precision.value,
            "location_precision": self.location_precision.value,
        }
        # Only when named: a report without them keeps the digest it had before they were
        # kept (digests are stored in identity state and the changelog).
        if self.target is not None:
            content["target"] = self.target
        if self.place is not None:
            content["place"] = self.place
        if self.time_of_day is not None:
            content["time_of_day"] = list(self.time_of_day)
        if self.civilian:
            content["civilian"] = True
        if self.names_raw is not None:
            content["names_raw"] = list(self.names_raw)
        return content

    @property
    def order(self) -> tuple[float, str, str]:
        """The canonical order of reports: event time, then identity (a total order)."""
        return (self.occurred, self.source, self.report_id)

    @property
    def withdrawn(self) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """The source retracts (`source`, `report_id`) as of `revision` (SPEC.md `withdrawn`)."""

    source: str
    report_id: str
    revision: int

    def __post_init__(self) -> None:
        if not 0 <= self.revision <= MAX_REVISION:
            raise ValueError(f"revision {self.revision} outside 0..{MAX_REVISION}")

    @property
    def ident(self) -> Ident:
        return (self.source, self.report_id)

    @property
    def digest(self) -> bytes:
        return WITHDRAWN_DIGEST

    @property
    def withdrawn(self) -> bool:
        return True


Version = ReportVersion | Withdrawal
