"""Fatality peaks over the whole theatre: `fatality_peak` rules with `scope: theatre`.

The test is the zones' one (`alerting/fatality.py`, HDX Signals): the people killed over
`window` days reach the highest `window` figure of the trailing `lookback`, and at least
`minimum`; not again within `cooldown`. Only the ledger differs: it holds the fatal
incidents of every zone.

A worker holds only the zones of its partitions, so the theatre's ledger is built from
what the zones send: each change of a zone's fatality ledger, as a `FatalChange` (zone,
incident id, day, killed; killed 0: the incident left). A change carries the *latest*
value of its key (zone, incident id), never a difference: applying one twice, or an older
one again before a newer one, leaves the ledger as the latest value says. So the theatre's
ledger equals the sum of the zones' ledgers whatever the interleaving of zones, as long as
each key's changes arrive in the order they were made (one zone's changes come from one
partition owner, in order), and replays after a crash or a rebalance never count twice.

Plain data and pure functions, like a zone's (`alerting/zone_state.py`,
`alerting/engine.py`): `TheatreState` (the ledger, the day each rule last fired, the firing
alerts, the clock and when observation began) and `evaluate` / `next_deadline`. The state
round-trips through `parts()` / `from_parts()`, so a stage writes only the parts a step
changed (`changed()`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from alerting.alert_ids import fingerprint
from alerting.fatality import DAY_SECONDS, FatalityLedger, day_of, first_whole_day, still_record
from alerting.peaks import (
    assess_peak,
    latest_fatal,
    peak_event,
    peak_fires,
    peak_refreshed,
    peak_resolved_summary,
)
from alerting.rules import THEATRE, FatalityPeakRule, RuleSet
from alerting.times import from_ms, to_ms
from alerting.zone_state import ZoneState
from schemas.alert import AlertEvent

__all__ = [
    "THEATRE",
    "FatalChange",
    "TheatreState",
    "evaluate",
    "fatal_changes",
    "ledger_changes",
    "next_deadline",
]

#: Between the zone and the incident id in a ledger key (no zone code contains it).
_SEP = "\x1f"
_DAY_MS = DAY_SECONDS * 1000


class FatalChange(NamedTuple):
    """The latest fatality entry of one incident of one zone: `killed` people on UTC day
    `day`; killed 0 (day then 0): the incident no longer counts (merged, withdrawn, no
    deaths any more, or aged out of the zone's ledger)."""

    zone: str
    incident_id: str
    day: int
    killed: int

    @property
    def key(self) -> str:
        return f"{self.zone}{_SEP}{self.incident_id}"

    def encode(self) -> bytes:
        return json.dumps(
            {
                "zone": self.zone,
                "incident_id": self.incident_id,
                "day": self.day,
                "killed": self.killed,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> FatalChange:
        """Raises ValueError on anything but `encode` output."""
        try:
            doc = json.loads(raw)
            zone, iid = doc["zone"], doc["incident_id"]
            day, killed = doc["day"], doc["killed"]
            if not (isinstance(zone, str) and zone and isinstance(iid, str) and iid):
                raise ValueError("zone and incident_id must be non-empty strings")
            if _SEP in zone:
                raise ValueError("a zone code cannot contain the unit separator")
            if type(day) is not int or type(killed) is not int or killed < 0:
                raise ValueError("day and killed must be integers, killed not negative")
            return cls(zone, iid, day, killed)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a fatality change: {exc!r}") from None


def fatal_changes(state: ZoneState, parts: Iterable[str]) -> list[FatalChange]:
    """The theatre's share of a zone's changed state parts (`ZoneState.changed()`): the
    current fatality entry of each `f<incident id>` part, in a stable order."""
    out: list[FatalChange] = []
    for part in sorted(parts):
        if part[:1] != "f":
            continue
        held = state.fatalities.incidents.get(part[1:])
        day, killed = held if held is not None else (0, 0)
        out.append(FatalChange(state.zone, part[1:], day, killed))
    return out


def ledger_changes(state: ZoneState) -> list[FatalChange]:
    """Every entry of a zone's fatality ledger (sent again after a recovery: idempotent)."""
    return [
        FatalChange(state.zone, iid, day, killed)
        for iid, (day, killed) in sorted(state.fatalities.incidents.items())
    ]


@dataclass
class TheatreState:
    """What the theatre's evaluator remembers. Mutated in place by `apply` and `evaluate`.
    Times in integer milliseconds; `since`: when observation began (None: unknown, nothing
    fires)."""

    since: int | None = None
    clock: int | None = None
    #: every zone's fatal incidents, keyed `<zone>\\x1f<incident id>`
    ledger: FatalityLedger = field(default_factory=FatalityLedger)
    #: rule name -> the day it last fired (cooldown)
    peaks: dict[str, int] = field(default_factory=dict)
    #: fingerprint -> the firing alert as last updated
    active: dict[str, AlertEvent] = field(default_factory=dict)
    #: part keys changed since the last `changed()`
    _touched: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    #: the day (and rules) of the last prune: the ledger is pruned once a day
    _pruned: tuple[int, int, frozenset[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def new(cls, since: datetime | None = None) -> TheatreState:
        return cls(since=None if since is None else to_ms(since))

    def apply(self, changes: Iterable[FatalChange]) -> bool:
        """Take the zones' latest entries; returns whether the ledger changed."""
        changed = False
        for c in changes:
            if self.ledger.put(c.key, c.day, c.killed):
                self._touched.add(f"f{c.key}")
                changed = True
        return changed

    def firing(self) -> list[AlertEvent]:
        return sorted(self.active.values(), key=lambda e: e.starts_at)

    def daily(self) -> dict[int, int]:
        """Killed per UTC day, all zones together."""
        return dict(self.ledger.daily)

    # -- parts: one changelog key each ----------------------------------------------------
    def parts(self) -> dict[str, Any]:
        """`m` the clock and `since`, `f<zone>\\x1f<id>` each fatal incident ([day, killed]),
        `p<rule>` the day a rule last fired, `a<fingerprint>` each firing alert."""
        out: dict[str, Any] = {"m": self._meta()}
        out.update((f"f{k}", [d, n]) for k, (d, n) in self.ledger.incidents.items())
        out.update((f"p{rule}", day) for rule, day in self.peaks.items())
        out.update((f"a{fp}", e.model_dump(mode="json")) for fp, e in self.active.items())
        return out

    def part(self, key: str) -> Any | None:
        """The current value of one part; None: it no longer exists."""
        kind, name = key[:1], key[1:]
        if kind == "m":
            return self._meta()
        if kind == "f":
            held = self.ledger.incidents.get(name)
            return None if held is None else [held[0], held[1]]
        if kind == "p":
            return self.peaks.get(name)
        if kind == "a":
            e = self.active.get(name)
            return None if e is None else e.model_dump(mode="json")
        raise ValueError(f"unknown theatre-state part {key!r}")

    def changed(self) -> set[str]:
        """Keys of the parts changed since the last call."""
        keys, self._touched = self._touched, set()
        return keys

    @classmethod
    def from_parts(cls, parts: Mapping[str, Any]) -> TheatreState:
        """Rebuild a state from its parts (tombstones left out). Raises ValueError."""
        try:
            meta = parts.get("m") or {}
            state = cls(
                since=None if meta.get("since") is None else int(meta["since"]),
                clock=None if meta.get("clock") is None else int(meta["clock"]),
            )
            for key, value in parts.items():
                kind, name = key[:1], key[1:]
                if kind == "f":
                    state.ledger.put(name, int(value[0]), int(value[1]))
                elif kind == "p":
                    state.peaks[name] = int(value)
                elif kind == "a":
                    state.active[name] = AlertEvent.model_validate(value)
                elif kind != "m":
                    raise ValueError(f"unknown theatre-state part {key!r}")
            return state
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed theatre state: {exc!r}") from None

    def _meta(self) -> dict[str, Any]:
        return {"since": self.since, "clock": self.clock}

    def _prune(self, rules: RuleSet) -> None:
        assert self.clock is not None
        days = rules.fatality_days
        names = frozenset(r.name for r in rules.theatre_fatality_rules)
        today = day_of(self.clock / 1000)
        if self._pruned == (today, days, names):
            return  # nothing aged out since
        self._pruned = (today, days, names)
        first = today - days if days else None
        for key, (day, _) in list(self.ledger.incidents.items()):
            if first is None or day < first:
                self.ledger.forget(key)
                self._touched.add(f"f{key}")
        for rule in [r for r in self.peaks if r not in names]:
            del self.peaks[rule]
            self._touched.add(f"p{rule}")


# -- evaluation ------------------------------------------------------------------------------


def evaluate(
    rules: RuleSet, state: TheatreState, now: datetime, *, changed: bool
) -> list[AlertEvent]:
    """Advance the clock to `now` (monotonic), resolve what no longer holds and, when the
    ledger `changed` since the last evaluation, fire what now holds a record. As for zones,
    a record fires when figures change; the passage of time only resolves."""
    ms = to_ms(now)
    if state.clock is None or ms > state.clock:
        state.clock = ms
        state._touched.add("m")
    events = _resolve(rules, state)
    if changed:
        events.extend(_fire(rules, state))
    state._prune(rules)
    return events


def next_deadline(rules: RuleSet, state: TheatreState) -> datetime | None:
    """When `evaluate` could resolve a firing alert with no further change: the next
    midnight (UTC), when the window moves; None when nothing fires."""
    if state.clock is None or not state.active:
        return None
    return from_ms((day_of(state.clock / 1000) + 1) * _DAY_MS)


def _rule(rules: RuleSet, name: str) -> FatalityPeakRule | None:
    rule = rules.rule(name)
    if isinstance(rule, FatalityPeakRule) and rule.scope == "theatre":
        return rule
    return None


def _fire(rules: RuleSet, state: TheatreState) -> list[AlertEvent]:
    assert state.clock is not None
    day = day_of(state.clock / 1000)
    observed_from = first_whole_day(state.since)
    labels = {"zone": THEATRE}
    events: list[AlertEvent] = []
    for rule in rules.theatre_fatality_rules:
        fp = fingerprint(rule.name, labels)
        a = assess_peak(state.ledger, day, rule, observed_from)
        active = state.active.get(fp)
        if active is not None:
            if a.total >= active.threshold:  # else it resolves at the next evaluation
                keys = latest_fatal(state.ledger.incidents.items(), day, rule.window_days)
                refreshed = peak_refreshed(
                    rule,
                    active,
                    a,
                    [key.partition(_SEP)[2] for key in keys],
                    f"{a.total} killed in the whole theatre (all zones)",
                    _most(state, day, rule.window_days),
                )
                if refreshed != active:
                    state.active[fp] = refreshed
                    state._touched.add(f"a{fp}")
            continue
        if not peak_fires(a, state.peaks.get(rule.name), day, rule):
            continue
        keys = latest_fatal(state.ledger.incidents.items(), day, rule.window_days)
        event = peak_event(
            rule,
            fp,
            labels,
            a,
            day,
            state.clock,
            [key.partition(_SEP)[2] for key in keys],
            f"{a.total} killed in the whole theatre (all zones)",
            _most(state, day, rule.window_days),
        )
        state.active[fp] = event
        state.peaks[rule.name] = day
        state._touched.update((f"a{fp}", f"p{rule.name}"))
        events.append(event)
    return events


def _resolve(rules: RuleSet, state: TheatreState) -> list[AlertEvent]:
    assert state.clock is not None
    clock = state.clock
    day = day_of(clock / 1000)
    events: list[AlertEvent] = []
    for fp, event in sorted(state.active.items(), key=lambda kv: kv[1].starts_at):
        rule = _rule(rules, event.rule)
        if rule is None:
            summary = f"Resolved: rule {event.rule} was removed, disabled or changed."
        else:
            beaten = int(event.threshold)
            if still_record(state.ledger, day, window=rule.window_days, beaten=beaten):
                continue
            total = state.ledger.window_sums(day, day, rule.window_days)[0]
            event = event.model_copy(update={"value": float(total)})
            summary = peak_resolved_summary(rule, total, "in the whole theatre", day, beaten)
        events.append(
            event.model_copy(
                update={
                    "status": "resolved",
                    "ends_at": from_ms(max(clock, to_ms(event.starts_at))),
                    "summary": summary,
                }
            )
        )
        del state.active[fp]
        state._touched.add(f"a{fp}")
    return events


def _most(state: TheatreState, day: int, window: int) -> str:
    """', most in zone loc-east (40)': the zone that lost the most in the window."""
    by_zone: Counter[str] = Counter()
    for key, (d, killed) in state.ledger.incidents.items():
        if day - window < d <= day:
            by_zone[key.partition(_SEP)[0]] += killed
    if not by_zone:
        return ""
    zone, n = min(by_zone.items(), key=lambda kv: (-kv[1], kv[0]))
    return f", most in zone {zone} ({n})"
