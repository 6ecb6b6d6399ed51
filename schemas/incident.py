"""The classified documents of one report: what ingest writes to the keyed topic
(`ceasefire.reports.accepted`) and `ceasefire.incidents` carries today.

* `Incident` (`kind` "report"): a validated report, classified.
* `ReportWithdrawal` (`kind` "withdrawal"): a source's withdrawal of one of its reports.

`decode_classified` reads either. Every field added since the first version has a default,
so documents written before it still decode (as `kind` "report", revision 0).
`encode_fields` writes a report's document from its fields without building the model.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
)

from schemas import jsonbytes
from schemas.codes import (
    Category,
    LocationPrecision,
    Party,
    Severity,
    SourceType,
    TimePrecision,
    Verification,
)

#: Namespace for incident ids: uuid5(source + report_id) is the same on every worker and run.
INCIDENT_NAMESPACE = uuid.UUID("6f1c7a52-4b8e-5d0e-9a1f-2c3b4d5e6f70")

_NAMESPACE_BYTES = INCIDENT_NAMESPACE.bytes

CIVILIANS = "civilians"


def incident_id_for(source: str, report_id: str) -> str:
    """uuid5(INCIDENT_NAMESPACE, source␟report_id), built directly: a third of the cost of
    `uuid.uuid5` on the per-report path, the same id."""
    name = f"{source}\x1f{report_id}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Incident(BaseModel):
    """One report, classified: zone, party codes, severity, verification.

    `claimant` is the party the source speaks for (None when it names none), `claimant_raw`
    the name as sent when it matched no party. `revision`, `time_precision` and
    `location_precision` are the report's (the last as defaulted by `Location`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["report"] = "report"
    incident_id: str
    report_id: str
    source: str
    source_type: SourceType
    occurred_at: AwareDatetime
    reported_at: AwareDatetime
    received_at: AwareDatetime
    zone: str
    lat: float
    lon: float
    place: str | None = None
    category: Category
    provision: str
    perpetrator: Party
    perpetrator_raw: str | None = None
    target: str  # a Party code or "civilians"
    target_raw: str | None = None
    killed: int = 0
    wounded: int = 0
    civilian: bool = False
    severity: Severity
    verification: Verification
    description: str | None = None
    revision: int = 0
    claimant: Party | None = None
    claimant_raw: str | None = None
    time_precision: TimePrecision = TimePrecision.EXACT
    location_precision: LocationPrecision = LocationPrecision.POINT
    #: The time of day the description states, for a day-precision report only:
    #: `HH:MM-HH:MM` local (`streams.classify.time_of_day`); None when it states none.
    time_of_day: str | None = None
    #: Hex of the 8-byte digests (`streams/record/documents.py`), set by ingest: of this
    #: document's content (`digest`), and of the report as sent (`sent_digest`, which tells
    #: a re-send from a conflicting version at one revision whatever the classifier made of
    #: either).
    digest: str | None = None
    sent_digest: str | None = None
    #: Where ingest read the report: [partition, offset] of the input topic (set from
    #: `CEASEFIRE_INTERNAL_FORMAT` 2 on). Not content, not in `model_dump`: what a revision
    #: conflict's dead letter reads the report as sent back from.
    input: tuple[int, int] | None = Field(default=None, exclude=True)


def encode_fields(fields: Mapping[str, Any]) -> bytes:
    """The JSON of an `Incident` given as its fields (plain values, enums, aware datetimes):
    the bytes `model_dump_json` writes (UTC as `Z`), at a sixth of the cost of building the
    model and dumping it."""
    return jsonbytes.dumps(fields, option=orjson.OPT_UTC_Z)


class ReportWithdrawal(BaseModel):
    """The source withdrew (`source`, `report_id`) as of `revision` (SPEC.md `withdrawn`):
    the report leaves every tally and incident once this is applied."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["withdrawal"] = "withdrawal"
    source: str
    report_id: str
    revision: int
    withdrawn: Literal[True] = True
    received_at: AwareDatetime
    #: as `Incident.input`
    input: tuple[int, int] | None = Field(default=None, exclude=True)


#: A classified document of the keyed topic.
Classified = Incident | ReportWithdrawal


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("kind", "report")
        return kind if isinstance(kind, str) else "report"
    return getattr(value, "kind", "report")


_CLASSIFIED: TypeAdapter[Classified] = TypeAdapter(
    Annotated[
        Annotated[Incident, Tag("report")] | Annotated[ReportWithdrawal, Tag("withdrawal")],
        Discriminator(
            _kind,
            custom_error_type="invalid_kind",
            custom_error_message="kind must be 'report' or 'withdrawal'",
        ),
    ]
)


def decode_classified(raw: bytes | str) -> Classified:
    """The document a keyed-topic message holds; a document without `kind` is a report.
    Raises pydantic's ValidationError for anything else.

    The documents this monitor writes (`model_dump_json`, `kind` first) are read without
    the tagged union, which costs half as much again as reading an `Incident`: a report
    directly, a withdrawal by its first bytes. Any other spelling of a withdrawal (spaces,
    field order) takes the union, after failing as a report."""
    data = raw.encode() if isinstance(raw, str) else raw
    if data.startswith(b'{"kind":"withdrawal"'):
        return ReportWithdrawal.model_validate_json(data)
    try:
        return Incident.model_validate_json(data)
    except ValidationError:
        if b'"withdrawal"' not in data:
            raise
    return _CLASSIFIED.validate_json(data)
