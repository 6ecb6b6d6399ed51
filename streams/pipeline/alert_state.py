"""The alert stage's changelog: each zone's state as parts, written as they change.

Keys (no zone id contains NUL or the unit separator):

- `<zone>\\x1f<part>` -> one part of a zone's `ZoneState` (`alerting.zone_state`, `parts()`):
  `m` its clock, `i<id>` an incident, `a<fingerprint>` a firing alert, `l<fingerprint>` a
  quiet-broken group; a removed part is a tombstone. A step writes the parts it changed
  only, so the changelog grows with what changed, never with the state held;
- `\\x00journal` -> per partition, the step being written: every change of the step and
  the alert events it produced (its *outbox*). It is written first, in the same partition
  as the parts (one producer, so in order): a worker that dies part-way through a step
  leaves the journal, from which the next owner completes the parts (recovery is exact,
  never a torn step) and publishes the events not yet on the alert topic. Once the events
  are confirmed it is a tombstone; a journal without events stays until the next step;
- `\\x00observed-since`, `\\x00applied`: when observation began, the input offset covered;
- `<zone>` -> the whole-zone record of before (read, then replaced by parts on the zone's
  next write; its outbox is settled like a journal's).

Pure: plain functions over recovered entries, unit-tested without a broker.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent
from streams.store.changelog import Recovered

log = logging.getLogger(__name__)

JOURNAL_KEY = b"\x00journal"
#: The time (ms) a partition's observation began.
SINCE_KEY = b"\x00observed-since"
JOURNAL_VERSION = 1
#: A journal past `COMPRESS_ABOVE` bytes is written zlib-compressed, after this prefix
#: a step of thousands of incidents in a partition's zones made a journal
#: of over 1 MiB, which the producer refuses, and the partition stalled on it for good.
#: Smaller ones stay version 1, which workers before it read (a rolling upgrade).
COMPRESSED_JOURNAL = b"\x00z2"
COMPRESS_ABOVE = 256 * 1024
RECORD_VERSION = 2
#: The part name of a whole-zone record of before (its key is the zone id alone).
LEGACY = ""
_SEP = "\x1f"

#: (zone, part, value or None: removed)
Change = tuple[str, str, Any | None]


class Outbox(NamedTuple):
    """Alert events written to a changelog, not yet confirmed on the alert topic."""

    written_ms: int
    events: list[AlertEvent]


def part_key(zone: str, part: str) -> bytes:
    return zone.encode() if part == LEGACY else f"{zone}{_SEP}{part}".encode()


def split_key(key: bytes) -> tuple[str, str]:
    zone, _, part = key.decode().partition(_SEP)
    return zone, part


def encode_part(value: Any | None) -> bytes | None:
    return None if value is None else json.dumps(value, separators=(",", ":")).encode()


def changes_of(states: Mapping[str, ZoneState], dirty: Mapping[str, Iterable[str]]) -> list[Change]:
    """The current value of each dirty part (a legacy record's last: see `restore`)."""
    out: list[Change] = []
    for zone, parts in dirty.items():
        state = states.get(zone)
        if state is None:  # unreadable at recovery: its entries stay as they are
            continue
        for part in sorted(parts, key=lambda p: (p == LEGACY, p)):
            out.append((zone, part, None if part == LEGACY else state.part(part)))
    return out


def entries_of(changes: Iterable[Change]) -> list[tuple[bytes, bytes | None]]:
    return [(part_key(zone, part), encode_part(value)) for zone, part, value in changes]


def encode_journal(
    written_ms: int, changes: Iterable[Change], events: Iterable[AlertEvent]
) -> bytes:
    raw = json.dumps(
        {
            "version": JOURNAL_VERSION,
            "written_ms": written_ms,
            "changes": [list(c) for c in changes],
            "events": [e.model_dump(mode="json") for e in events],
        },
        separators=(",", ":"),
    ).encode()
    if len(raw) <= COMPRESS_ABOVE:
        return raw
    return COMPRESSED_JOURNAL + zlib.compress(raw, 1)


def decode_journal(raw: bytes) -> tuple[Outbox, list[Change]]:
    """Raises ValueError on anything but `encode_journal` output."""
    try:
        if raw.startswith(COMPRESSED_JOURNAL):
            raw = zlib.decompress(raw[len(COMPRESSED_JOURNAL) :])
        doc = json.loads(raw)
        if doc.get("version") != JOURNAL_VERSION:
            raise ValueError(f"unsupported journal version {doc.get('version')!r}")
        changes: list[Change] = [(str(z), str(p), v) for z, p, v in doc["changes"]]
        events = [AlertEvent.model_validate(e) for e in doc["events"]]
        return Outbox(int(doc["written_ms"]), events), changes
    except (KeyError, TypeError, AttributeError, zlib.error) as exc:
        raise ValueError(f"malformed alert-state journal: {exc!r}") from None


@dataclass(slots=True)
class Restored:
    states: dict[str, ZoneState] = field(default_factory=dict)
    partition_of: dict[str, int] = field(default_factory=dict)
    since: dict[int, int] = field(default_factory=dict)
    applied: dict[int, int] = field(default_factory=dict)
    #: per partition: events of an unconfirmed journal (or whole-zone record)
    outboxes: dict[int, Outbox] = field(default_factory=dict)
    #: parts to write again: those of a journal (its step may be torn) and every part of
    #: a zone still in a whole-zone record, with that record's tombstone
    dirty: dict[str, set[str]] = field(default_factory=dict)


def restore(recovered: Mapping[int, Recovered]) -> Restored:
    """The alert states that the changelog partitions hold (their entries: the latest
    value per key, tombstones left out). An unreadable entry is logged and skipped."""
    out = Restored()
    parts_of: dict[str, dict[str, Any]] = {}
    legacy: dict[str, tuple[ZoneState, Outbox | None]] = {}
    for p, rec in recovered.items():
        out.applied[p] = rec.applied
        journal: tuple[Outbox, list[Change]] | None = None
        for key, value in rec.entries:
            try:
                if key == SINCE_KEY:
                    out.since[p] = int(value)
                elif key == JOURNAL_KEY:
                    journal = decode_journal(value)
                elif not key.startswith(b"\x00"):
                    zone, part = split_key(key)
                    if part == LEGACY:
                        legacy[zone] = decode_record(value)
                    else:
                        parts_of.setdefault(zone, {})[part] = json.loads(value)
                    out.partition_of[zone] = p
            except ValueError as exc:  # not ours, or damaged
                log.error(
                    "skipping unreadable alert-state entry %r of partition %d: %s", key, p, exc
                )
        if journal is None:
            continue
        outbox, changes = journal
        for zone, part, latest in changes:  # the latest step: its parts may not all be written
            target = parts_of.setdefault(zone, {})
            if part == LEGACY:
                legacy.pop(zone, None)
            elif latest is None:
                target.pop(part, None)
            else:
                target[part] = latest
            out.dirty.setdefault(zone, set()).add(part)
            out.partition_of[zone] = p
        if outbox.events:
            out.outboxes[p] = outbox
    for zone, (state, box) in legacy.items():
        # never written as parts (the conversion writes the record's tombstone last)
        parts = state.parts()
        parts_of[zone] = parts | parts_of.get(zone, {})
        out.dirty.setdefault(zone, set()).update([*parts, LEGACY])
        if box is not None:
            p = out.partition_of[zone]
            held = out.outboxes.get(p)
            out.outboxes[p] = (
                box
                if held is None
                else Outbox(min(held.written_ms, box.written_ms), [*held.events, *box.events])
            )
    for zone, parts in parts_of.items():
        if not parts:
            continue
        try:
            out.states[zone] = ZoneState.from_parts(zone, parts)
        except ValueError as exc:
            log.error("skipping the unreadable alert state of zone %s: %s", zone, exc)
    return out


# -- the whole-zone record of before ----------------------------------------------------------


def encode_record(state: ZoneState, outbox: Outbox | None) -> bytes:
    record: dict[str, Any] = {"version": RECORD_VERSION, "state": state.to_json()}
    if outbox is not None:
        record["outbox"] = {
            "written_ms": outbox.written_ms,
            "events": [e.model_dump(mode="json") for e in outbox.events],
        }
    return json.dumps(record).encode()


def decode_record(value: bytes) -> tuple[ZoneState, Outbox | None]:
    """A zone's whole record; also the bare state of version 1 records (no outbox).
    Raises ValueError on anything else."""
    try:
        record = json.loads(value)
        if record.get("version") != RECORD_VERSION:
            return ZoneState.from_json(record), None
        state = ZoneState.from_json(record["state"])
        box = record.get("outbox")
        if not box:
            return state, None
        events = [AlertEvent.model_validate(e) for e in box["events"]]
        return state, Outbox(int(box["written_ms"]), events)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed alert-state record: {exc!r}") from None
