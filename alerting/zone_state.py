"""One zone's alert state, as the engine (`alerting/engine.py`) keeps it: the zone's
incidents within retention (`Entry`), its firing alerts (`ActiveAlert`), each quiet-broken
group's latest incident, its fatality ledger, and the clock.

The state (`ZoneState`) is plain data. It round-trips whole through `to_json()`/
`from_json()`, and as independent parts (`parts()`/`from_parts()`: its clock, each incident,
each firing alert, each quiet-broken group), so that a stream stage writes to its changelog
only the parts a batch changed (`mark()`/`changed()`), never the whole state.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from alerting.fatality import FatalityLedger, day_of
from alerting.rules import QuietBrokenRule, RuleSet
from alerting.summaries import matching
from alerting.times import PRECISION_MS, to_ms
from schemas.alert import MAX_INCIDENT_IDS, AlertEvent
from schemas.alert_input import AlertInput

STATE_VERSION = 1


class Entry(NamedTuple):
    """One incident as the state remembers it. Times are integer milliseconds (exact)."""

    ts: int
    incident_id: str
    party: str
    category: str
    severity: str
    killed: int
    wounded: int
    target: str
    verification: str
    civilian: bool
    #: how precisely `ts` is known (`time_precision`): the windowed rules count an incident
    #: only in windows at least as long as its period (`alerting.times.PRECISION_MS`)
    precision: str = "exact"


#: The kinds of alert held for a while after their incidents: their incidents are listed.
_HELD = ("incident", "quiet_broken")


#: Most ids an incident alert's episode keeps (`ActiveAlert.ids`): a zone's incidents in
#: retention are bounded, but an episode kept alive for months is not; beyond it, the
#: oldest matches are no longer taken out by a withdrawal.
MAX_EPISODE_IDS = 1000


@dataclass
class ActiveAlert:
    """A firing alert: the event as last updated, and what the engine needs to resolve it."""

    event: AlertEvent
    kind: str
    #: Incident and quiet-broken alerts: when the hold ends (ms), unless extended.
    hold_until: int | None = None
    #: Incident alerts: how many matching incidents this episode has seen.
    matches: int = 1
    #: Incident alerts: the ids of the episode's matching incidents, oldest first (the
    #: event lists the last MAX_INCIDENT_IDS), so that a withdrawal of any of them takes it
    #: out of `matches`, not only of the last 20 (bounded: MAX_EPISODE_IDS).
    ids: list[str] = field(default_factory=list)
    #: Incident alerts: the event time (ms) of the earliest matching incident the episode
    #: holds, the "since" of its summary; quiet-broken alerts: of the incident that broke
    #: the quiet. Not `starts_at`, which is never later than the clock when the alert fired
    #: (an incident dated ahead by clock skew starts its alert at the clock, so it does not
    #: stay "active" in Alertmanager until then), nor earlier than that for a late incident.
    #: None (a state from before it was kept): `starts_at` stands for it.
    first: int | None = None

    @property
    def first_ms(self) -> int:
        return self.first if self.first is not None else to_ms(self.event.starts_at)


@dataclass
class ZoneState:
    """Everything the engine remembers about one zone. Mutated in place by the evaluators.

    `since` (ms): when observation began, if known. Quiet-broken rules measure a quiet
    period from the group's latest incident or from it, whichever is later (time before it
    is never quiet), and escalation baselines are not counted before it; without it, a
    group never seen does not break a quiet period and missing history counts as zero
    incidents."""

    zone: str
    since: int | None = None
    clock: int | None = None
    #: The zone's incidents within retention, sorted by event time.
    incidents: list[Entry] = field(default_factory=list)
    #: quiet_broken rules: fingerprint -> (rule name, latest matching event time in ms).
    last_seen: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: fingerprint -> the firing alert.
    active: dict[str, ActiveAlert] = field(default_factory=dict)
    #: fatality_peak rules: the zone's fatal incidents by day, over the rules' lookback
    #: (longer than `incidents` keeps: `alerting/fatality.py`).
    fatalities: FatalityLedger = field(default_factory=FatalityLedger)
    #: fatality_peak rules: rule name -> the day it last fired in this zone (cooldown).
    peaks: dict[str, int] = field(default_factory=dict)
    #: fingerprint -> how many episodes it has fired (its alert ids: `engine._start`). Bounded by
    #: the rules' label sets, so kept for good.
    episodes: dict[str, int] = field(default_factory=dict)
    #: incident id -> its entry (the index of `incidents`)
    by_id: dict[str, Entry] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: How many of `incidents` are known less precisely than to the minute: while none
    #: is, the windowed rules count by index arithmetic alone (`engine._window_test`)
    coarse: int = field(default=0, init=False, repr=False, compare=False)
    #: Ids of incidents added or removed since the last `changed()`.
    _touched: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    #: Ids of incidents whose fatality entry changed since the last `changed()`.
    fatal_touched: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    #: fingerprint -> the incidents `forget` took out of that alert in this step: a new
    #: version of one comes back however old it is (`max_age` is for new matches)
    left: dict[str, set[str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Within a step: the version each refreshed incident had before it (`refresh`), or,
    #: for a survivor the state did not hold (a rename), the first incident merged into it.
    was: dict[str, Entry] = field(default_factory=dict, init=False, repr=False, compare=False)
    #: Within a step: survivor -> every incident merged into it (`forget` with `into`), so
    #: that a rule any of them matched is no new match of the survivor (`engine._had_its_alert`).
    merged: dict[str, list[Entry]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.by_id = {e.incident_id: e for e in self.incidents}
        self.coarse = sum(e.precision != "exact" for e in self.incidents)

    @classmethod
    def new(cls, zone: str, since: datetime | None = None) -> ZoneState:
        return cls(zone=zone, since=None if since is None else to_ms(since))

    # -- queries ------------------------------------------------------------------------
    def firing(self) -> list[AlertEvent]:
        """The zone's firing alerts, as last updated, oldest first."""
        return sorted((a.event for a in self.active.values()), key=lambda e: e.starts_at)

    def knows(self, incident_id: str) -> bool:
        return incident_id in self.by_id

    def refresh(self, incident: AlertInput) -> bool:
        """A newer version of a known incident (a later report raised its casualties,
        changed its category or severity) replaces the version the state holds, so the
        next evaluation sees it afresh: an incident rule it now matches fires (once per
        fingerprint, as always), and windows count it once. Returns whether it changed."""
        if incident.incident_id not in self.by_id:
            return False
        new = entry_of(incident)
        old = self.by_id.get(new.incident_id)
        if old == new:
            return False
        assert old is not None
        self.was[new.incident_id] = old
        self.forget(incident.incident_id)
        return True

    def forget(self, incident_id: str, into: str | None = None) -> bool:
        """An incident that no longer exists (merged into another, or all its reports
        withdrawn), or whose version the state holds is replaced (`refresh`), leaves the
        counts of windows and baselines and the fatality ledger, and the incident and
        quiet-broken alerts it is in (their `incident_ids`, an incident alert's count):
        one event renamed by a merge is one match, not two, and an alert left without an
        incident resolves at the end of the step (`engine._resolve`); a new version that still
        matches comes back in the same step. `into`: the incident it was merged into, which
        takes its place in those alerts when its new version matches in the same step (the
        alert does not resolve for a merge, however old the survivor), and is no new match
        of a rule it matched in the same group (its alert resolved, or it was too old to
        fire). Returns whether it was known."""
        for fp, active in self.active.items():
            held = active.ids if active.kind == "incident" else active.event.incident_ids
            if active.kind in _HELD and incident_id in held:
                left = self.left.setdefault(fp, set())
                left.add(incident_id)
                if into is not None:
                    left.add(into)
                update: dict[str, Any] = {
                    "incident_ids": [i for i in active.event.incident_ids if i != incident_id]
                }
                if active.kind == "incident":
                    active.ids = [i for i in active.ids if i != incident_id]
                    update["incident_ids"] = active.ids[-MAX_INCIDENT_IDS:]
                    n = active.matches = max(0, active.matches - 1)
                    update["value"] = float(n)
                    active.first = self._earliest(active, incident_id)
                    # the summary named the incident that left: say what is left, until
                    # a new match words it again (or the alert resolves, left with none)
                    update["summary"] = (
                        f"{matching(n, active.event.rule, self.zone, active.first_ms)}; one "
                        "left this alert (withdrawn, merged into another, or revised)."
                    )
                active.event = active.event.model_copy(update=update)
        fatal = self.fatalities.forget(incident_id)  # held longer than `incidents`
        if fatal:
            self.fatal_touched.add(incident_id)
        entry = self.by_id.pop(incident_id, None)
        if entry is None:
            return fatal
        if into is not None:
            # the survivor stands for it: where this version matched, the survivor had its
            # match (`engine._had_its_alert`): a rename (a second source's earlier report) pages
            # no more once the alert's hold has ended
            self.was.setdefault(into, entry)
            self.merged.setdefault(into, []).append(entry)
        self._touched.add(incident_id)
        self.coarse -= entry.precision != "exact"
        at = bisect_left(self.incidents, entry)
        if at < len(self.incidents) and self.incidents[at] == entry:
            del self.incidents[at]
        else:  # a list built out of order by hand
            self.incidents.remove(entry)
        return True

    def _earliest(self, active: ActiveAlert, gone: str) -> int | None:
        """An incident alert's `first` once `gone` left it: the earliest event time of the
        incidents it still holds, as the index knows them. Unchanged where `gone` was not
        the earliest, or where one it holds is no longer in the index (pruned: older)."""
        entry = self.by_id.get(gone)
        if entry is None or entry.ts > active.first_ms:
            return active.first
        held = [self.by_id.get(i) for i in active.ids]
        if not held or any(h is None for h in held):
            return active.first
        return min(h.ts for h in held if h is not None)

    # -- parts: what a changelog holds, one key per part -------------------------------
    def parts(self) -> dict[str, Any]:
        """The whole state as parts, part key -> plain JSON value: `m` its clock, `i<id>`
        each incident, `a<fingerprint>` each firing alert, `l<fingerprint>` each
        quiet-broken group's latest incident, `f<id>` each fatal incident of the fatality
        ledger ([day, killed]), `p<rule>` the day a fatality_peak rule last fired,
        `n<fingerprint>` how many episodes a fingerprint has fired.
        `from_parts(zone, parts())` equals it."""
        out: dict[str, Any] = {"m": self._meta()}
        out.update((f"i{e.incident_id}", _entry_json(e)) for e in self.incidents)
        out.update((f"a{fp}", _active_json(a)) for fp, a in self.active.items())
        out.update((f"l{fp}", [rule, ts]) for fp, (rule, ts) in self.last_seen.items())
        out.update((f"f{iid}", list(v)) for iid, v in self.fatalities.incidents.items())
        out.update((f"p{rule}", day) for rule, day in self.peaks.items())
        out.update((f"n{fp}", n) for fp, n in self.episodes.items())
        return out

    def part(self, key: str) -> Any | None:
        """The current value of one part; None: the part no longer exists."""
        kind, name = key[:1], key[1:]
        if kind == "m":
            return self._meta()
        if kind == "i":
            e = self.by_id.get(name)
            return None if e is None else _entry_json(e)
        if kind == "a":
            a = self.active.get(name)
            return None if a is None else _active_json(a)
        if kind == "l":
            seen = self.last_seen.get(name)
            return None if seen is None else [seen[0], seen[1]]
        if kind == "f":
            fatal = self.fatalities.incidents.get(name)
            return None if fatal is None else list(fatal)
        if kind == "p":
            return self.peaks.get(name)
        if kind == "n":
            return self.episodes.get(name)
        raise ValueError(f"unknown alert-state part {key!r}")

    def mark(self) -> StateMark:
        """What `changed()` compares with: the small parts as they are now (the incidents
        are tracked as they change). Cheap: O(firing alerts + quiet groups)."""
        self._touched.clear()
        self.fatal_touched.clear()
        return StateMark(
            (self.since, self.clock),
            {
                fp: (a.event, a.kind, a.hold_until, a.matches, tuple(a.ids), a.first)
                for fp, a in self.active.items()
            },
            dict(self.last_seen),
            dict(self.peaks),
            dict(self.episodes),
        )

    def changed(self, mark: StateMark | None) -> set[str]:
        """Keys of the parts changed since `mark` (None: a new state, every part)."""
        if mark is None:
            self._touched.clear()
            self.fatal_touched.clear()
            return set(self.parts())
        keys = {f"i{iid}" for iid in self._touched}
        keys.update(f"f{iid}" for iid in self.fatal_touched)
        self._touched.clear()
        self.fatal_touched.clear()
        for rule in mark.peaks.keys() | self.peaks.keys():
            if mark.peaks.get(rule) != self.peaks.get(rule):
                keys.add(f"p{rule}")
        keys.update(
            f"n{fp}" for fp, n in self.episodes.items() if mark.episodes.get(fp) != n
        )  # counts only grow
        if (self.since, self.clock) != mark.meta:
            keys.add("m")
        for fp in mark.active.keys() | self.active.keys():
            a = self.active.get(fp)
            if a is None or mark.active.get(fp) != (
                a.event,
                a.kind,
                a.hold_until,
                a.matches,
                tuple(a.ids),
                a.first,
            ):
                keys.add(f"a{fp}")
        for fp in mark.last_seen.keys() | self.last_seen.keys():
            if mark.last_seen.get(fp) != self.last_seen.get(fp):
                keys.add(f"l{fp}")
        return keys

    @classmethod
    def from_parts(cls, zone: str, parts: Mapping[str, Any]) -> ZoneState:
        """Rebuild a state from its parts. Raises ValueError on anything else."""
        try:
            meta = parts["m"]
            data = {
                **meta,
                "zone": zone,
                "incidents": [v for k, v in parts.items() if k[:1] == "i"],
                "active": {k[1:]: v for k, v in parts.items() if k[:1] == "a"},
                "last_seen": {k[1:]: v for k, v in parts.items() if k[:1] == "l"},
                "fatal": {k[1:]: v for k, v in parts.items() if k[:1] == "f"},
                "peaks": {k[1:]: v for k, v in parts.items() if k[:1] == "p"},
                "episodes": {k[1:]: v for k, v in parts.items() if k[:1] == "n"},
            }
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed alert state parts: {exc!r}") from None
        return cls.from_json(data)

    def _meta(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "since": self.since, "clock": self.clock}

    # -- plain data ---------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "zone": self.zone,
            "since": self.since,
            "clock": self.clock,
            "incidents": [_entry_json(e) for e in self.incidents],
            "last_seen": {fp: [rule, ts] for fp, (rule, ts) in self.last_seen.items()},
            "active": {fp: _active_json(a) for fp, a in self.active.items()},
            "fatal": {iid: list(v) for iid, v in self.fatalities.incidents.items()},
            "peaks": dict(self.peaks),
            "episodes": dict(self.episodes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ZoneState:
        """Rebuild a state from `to_json()` output. Raises ValueError on anything else."""
        try:
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported alert state version {data.get('version')!r}")
            incidents = [
                Entry(
                    int(r[0]),
                    str(r[1]),
                    str(r[2]),
                    str(r[3]),
                    str(r[4]),
                    int(r[5]),
                    int(r[6]),
                    str(r[7]),
                    str(r[8]),
                    bool(r[9]),
                    _precision(r[10]) if len(r) > 10 else "exact",
                )
                for r in data["incidents"]
            ]
            incidents.sort()
            active = {
                str(fp): ActiveAlert(
                    event=AlertEvent.model_validate(a["event"]),
                    kind=str(a["kind"]),
                    hold_until=None if a.get("hold_until") is None else int(a["hold_until"]),
                    matches=int(a.get("matches", 1)),
                    # absent before it was kept: the event's (the last 20) stand for them
                    ids=[str(i) for i in a.get("ids", a["event"]["incident_ids"])]
                    if a["kind"] == "incident"
                    else [],
                    first=None if a.get("first") is None else int(a["first"]),
                )
                for fp, a in data["active"].items()
            }
            fatalities = FatalityLedger()
            for iid, (day, killed) in data.get("fatal", {}).items():  # absent before
                fatalities.put(str(iid), int(day), int(killed))
            return cls(
                zone=str(data["zone"]),
                since=None if data.get("since") is None else int(data["since"]),
                clock=None if data.get("clock") is None else int(data["clock"]),
                incidents=incidents,
                last_seen={str(fp): (str(v[0]), int(v[1])) for fp, v in data["last_seen"].items()},
                active=active,
                fatalities=fatalities,
                peaks={str(rule): int(day) for rule, day in data.get("peaks", {}).items()},
                episodes={str(fp): int(n) for fp, n in data.get("episodes", {}).items()},
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed alert state: {exc!r}") from None

    # -- the index ----------------------------------------------------------------------
    def add(self, entry: Entry) -> None:
        if self.incidents and entry >= self.incidents[-1]:
            self.incidents.append(entry)  # the common case: arrival order is event order
        else:
            insort(self.incidents, entry)
        self.by_id[entry.incident_id] = entry
        self._touched.add(entry.incident_id)
        self.coarse += entry.precision != "exact"

    def prune(self, rules: RuleSet) -> None:
        assert self.clock is not None
        cut = bisect_right(self.incidents, self.clock - rules.retention_seconds * 1000, key=_ts)
        excess = len(self.incidents) - cut - rules.max_incidents_per_zone
        if excess > 0:
            cut += excess
        if cut > 0:
            for e in self.incidents[:cut]:
                del self.by_id[e.incident_id]
                self._touched.add(e.incident_id)
                self.coarse -= e.precision != "exact"
            del self.incidents[:cut]
        quiet = {r.name for r in rules.active_rules if isinstance(r, QuietBrokenRule)}
        for fp in [fp for fp, (rule, _) in self.last_seen.items() if rule not in quiet]:
            del self.last_seen[fp]
        days = rules.fatality_days
        first_day = day_of(self.clock / 1000) - days if days else None
        for iid, (day, _) in list(self.fatalities.incidents.items()):
            if first_day is None or day < first_day:
                self.fatalities.forget(iid)
                self.fatal_touched.add(iid)
        fatal_rules = {r.name for r in rules.fatality_rules}
        for rule in [rule for rule in self.peaks if rule not in fatal_rules]:
            del self.peaks[rule]

    def after(self, lo: int) -> list[Entry]:
        """Entries with ts > lo."""
        return self.incidents[bisect_right(self.incidents, lo, key=_ts) :]


class StateMark(NamedTuple):
    """A state's small parts at `ZoneState.mark()`."""

    meta: tuple[int | None, int | None]
    active: dict[str, tuple[AlertEvent, str, int | None, int, tuple[str, ...], int | None]]
    last_seen: dict[str, tuple[str, int]]
    peaks: dict[str, int]
    episodes: dict[str, int]


def _active_json(a: ActiveAlert) -> dict[str, Any]:
    return {
        "event": a.event.model_dump(mode="json"),
        "kind": a.kind,
        "hold_until": a.hold_until,
        "matches": a.matches,
        **({"ids": a.ids} if a.kind == "incident" else {}),
        **({"first": a.first} if a.first is not None else {}),
    }


def _entry_json(e: Entry) -> list[Any]:
    # an exact time's entry as before the precision was kept (ten fields), which an
    # earlier worker reads too; such a worker reads a longer one's first ten
    return list(e) if e.precision != "exact" else list(e[:10])


def _precision(value: Any) -> str:
    if value not in PRECISION_MS:
        raise ValueError(f"unknown time precision {value!r}")
    return str(value)


def _ts(e: Entry) -> int:
    return e.ts


def entry_of(i: AlertInput) -> Entry:
    return Entry(
        i.occurred_ms,
        i.incident_id,
        str(i.perpetrator),
        str(i.category),
        str(i.severity),
        i.killed,
        i.wounded,
        i.target,
        str(i.verification),
        i.civilian,
        str(i.time_precision),
    )
