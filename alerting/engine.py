"""The alert engine: pure functions over one zone's state, incidents and a clock.

All of one zone's incidents reach one place (the incidents topic is keyed by zone), in
arrival order. The state of a zone (`ZoneState`, `alerting/zone_state.py`) is plain data,
written to a changelog by the parts a step changed.

Time. `now` is the wall clock in live mode and the event time in a backtest. The state
keeps a monotonic `clock` (the largest `now` seen), and every window is evaluated by
event time against it: a threshold counts matching incidents with `occurred_at` in
`(clock - window, clock]` (an incident dated a little after the clock, by clock skew,
counts as current). A late incident counts only if it falls in the current window; it
never fires a window that has already closed. Incident and quiet-broken rules fire for a
late incident only if it occurred within the rule's `max_age` (default: its `hold`).
A windowed rule counts an incident only in windows at least as long as its time
precision's period (`_window_test`): a day-precision incident is in no particular hour.

Lifecycle. One `firing` event per fingerprint (rule + labels) until a `resolved` event:
new matching incidents update the state's copy of the alert (value, incident ids,
summary) without emitting anything. Threshold and escalation alerts resolve when their
condition no longer holds at the clock; incident and quiet-broken alerts `hold` after
the latest matching incident (`ends_at` is exactly that moment). Resolution happens in
`evaluate_time` and in every `evaluate_batch`: at its start for what time resolved, at its
end for what the batch's merges and new versions took below a level (a dip within one
batch resolves nothing).

Duplicates. An incident id already in the state is ignored entirely, so a re-delivered
incident changes no count and fires nothing. Alert ids are uuid5 of the fingerprint, the
incident that started the episode and, from the second on, the episode's number (the state
counts them per fingerprint): a replay produces the same ids, and an incident that starts a
second episode (withdrawn and reinstated, revised out of a rule and back) gets a new one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from alerting.alert_ids import alert_id_for, fingerprint
from alerting.fatality import day_of, first_whole_day, still_record
from alerting.peaks import (
    assess_peak,
    latest_fatal,
    peak_event,
    peak_fires,
    peak_refreshed,
    peak_resolved_summary,
)
from alerting.rules import (
    AnyRule,
    EscalationRule,
    FatalityPeakRule,
    IncidentRule,
    Match,
    QuietBrokenRule,
    RuleSet,
    ThresholdRule,
)
from alerting.summaries import capitalised, incident_text, matching, quiet_summary, what
from alerting.times import LONGEST_PRECISION_MS, PRECISION_MS, from_ms, to_ms
from alerting.zone_state import MAX_EPISODE_IDS, ActiveAlert, Entry, ZoneState, entry_of
from schemas.alert import MAX_INCIDENT_IDS, AlertEvent
from schemas.alert_input import AlertInput
from schemas.codes import Severity

_RANK = {s.value: s.rank for s in Severity}


# -- public functions ---------------------------------------------------------------------


def evaluate_incident(
    rules: RuleSet, state: ZoneState, incident: AlertInput, now: datetime
) -> list[AlertEvent]:
    """Add one incident and return the transitions: first any alerts that resolved by
    `now`, then new `firing` events. Already-firing alerts are updated silently."""
    return evaluate_batch(rules, state, [incident], now)


def evaluate_batch(
    rules: RuleSet,
    state: ZoneState,
    incidents: Iterable[AlertInput],
    now: datetime,
    forget: Iterable[str] = (),
    merged_into: Mapping[str, str] | None = None,
    events: list[AlertEvent] | None = None,
) -> list[AlertEvent]:
    """`evaluate_incident` for several incidents of the zone at once, in arrival order,
    and the incidents of `forget` gone (merged into another, or withdrawn; `merged_into`:
    the survivor of each merged one, where known).

    Incident and quiet-broken rules see each incident in turn; windowed rules are
    evaluated once per affected label group after the whole batch is added (counts only
    grow within a batch, so this fires exactly when one-by-one evaluation would).

    One step, one transition: what `now` resolves is resolved on the state as it was
    before the batch; the batch's changes to known incidents (`forget`, and a newer
    version of a known incident, seen afresh: `ZoneState.refresh`) apply after that, and
    the counts are checked again only once the batch is in. So a count that dips and comes
    back within one step (a merge taking one incident out and putting its survivor's new
    version in, a new version of an incident while the count is at the threshold) does not
    resolve an alert and fire it again at the same instant.

    The events are appended to `events` (a new list if None) as the state changes, and
    returned: should the evaluation fail part way, the caller still has every event that
    the state it leaves already reflects (an alert it holds firing, one it dropped)."""
    events = [] if events is None else events
    clock = _advance(state, now)
    _resolve(rules, state, events, emptied=False)  # emptied: by this step, checked at its end
    state.left.clear()
    state.was.clear()
    state.merged.clear()
    into = merged_into or {}
    for iid in forget:
        gone = state.by_id.get(iid) if iid not in into else None  # withdrawn
        state.forget(iid, into.get(iid))
        if gone is not None:
            _unsee(rules, state, gone, clock)
    incidents = list(incidents)
    for incident in incidents:
        state.refresh(incident)
    fresh: list[Entry] = []
    oldest = clock - rules.retention_seconds * 1000
    # Incidents this step took out of an alert (`forget`, `refresh`): their new version (or
    # the survivor of a merge) comes back to it however old it is, as `_on_incident` takes
    # it; skipped as too old, it left the alert empty, resolved while its incident stood.
    returning: set[str] = set().union(*state.left.values())
    fatal_from = day_of(clock / 1000) - rules.fatality_days if rules.fatality_days else None
    fatal_changed = False
    for incident in incidents:
        if incident.zone != state.zone:
            raise ValueError(
                f"incident {incident.incident_id} is in zone {incident.zone!r}, "
                f"not in this state's zone {state.zone!r}"
            )
        # The whole entry only for an incident the rules take: a backfill's are mostly past
        # their retention, and need only their time, id and deaths.
        ts = incident.occurred_ms
        iid = incident.incident_id
        day = day_of(ts / 1000)
        # Before the checks below: a late or revised incident older than the other rules'
        # retention still counts in the fatality ledger.
        if (
            fatal_from is not None
            and day >= fatal_from
            and state.fatalities.put(iid, day, int(incident.killed))
        ):
            state.fatal_touched.add(iid)
            fatal_changed = True
        if iid in state.by_id or (ts < oldest and iid not in returning):
            continue  # a duplicate delivery, or too old to matter to any rule
        entry = entry_of(incident)
        state.add(entry)
        fresh.append(entry)
        _on_incident(rules, state, entry, incident, events)
    if fresh:
        _on_windows(rules, state, fresh, events)
    if fatal_changed:
        _on_fatalities(rules, state, events)
    _resolve(rules, state, events)  # what the step's changes leave below its level
    state.prune(rules)
    return events


def evaluate_time(rules: RuleSet, state: ZoneState, now: datetime) -> list[AlertEvent]:
    """Advance the clock to `now` and return the alerts that resolved (`resolved` events
    with `ends_at`). Values of alerts still firing are refreshed silently."""
    _advance(state, now)
    events: list[AlertEvent] = []
    _resolve(rules, state, events)
    state.prune(rules)
    return events


def next_deadline(rules: RuleSet, state: ZoneState) -> datetime | None:
    """The earliest time at which `evaluate_time` could resolve or change a firing alert of
    this zone, if no further incident arrives; None when nothing is firing. A timer (or
    the backtest) calls `evaluate_time` then."""
    if state.clock is None or not state.active:
        return None
    clock = state.clock
    best: int | None = None
    for active in state.active.values():
        rule = rules.rule(active.event.rule)
        at: int | None
        if (
            rule is None
            or rule.kind != active.kind
            or not _labels_fit(rule, active.event)
            or _theatre(rule)
        ):
            at = clock
        elif isinstance(rule, IncidentRule | QuietBrokenRule):
            at = active.hold_until if active.hold_until is not None else clock
        elif isinstance(rule, FatalityPeakRule):
            at = (day_of(clock / 1000) + 1) * 86_400_000  # the window moves at midnight UTC
        elif isinstance(rule, ThresholdRule):
            w = rule.window.seconds * 1000
            group = _group(state, rule, active.event.labels, clock - w)
            thr = rule.threshold_for(state.zone)
            at = clock if len(group) < thr else group[len(group) - thr].ts + w
        else:
            w = rule.window.seconds * 1000
            b = rule.baseline.seconds * 1000
            # The next entry to move from the window into the baseline, or out of it.
            test = _window_test(rule, state, active.event.labels)
            crossings = [
                e.ts + shift
                for shift in (w, w + b)
                for e in itertools.islice(
                    (x for x in state.after(clock - shift) if test is None or test(x)), 1
                )
            ]
            if state.since is not None:
                # While observation limits the baseline, it grows by one window every
                # `window` (`_check`): the mean can fall and end the condition then.
                observed = max(0, (clock - w - state.since) // w)
                if observed < rule.baseline_windows:
                    crossings.append(state.since + w + (observed + 1) * w)
            at = min(crossings) if crossings else None
        if at is not None:
            best = at if best is None else min(best, at)
    return None if best is None else from_ms(best)


def _start(state: ZoneState, fp: str, trigger_incident_id: str) -> str:
    """The id of a new episode of `fp` in this zone, counted."""
    episode = state.episodes.get(fp, 0)
    state.episodes[fp] = episode + 1
    return alert_id_for(fp, trigger_incident_id, episode)


# -- internals ---------------------------------------------------------------------------


def _advance(state: ZoneState, now: datetime) -> int:
    ms = to_ms(now)
    state.clock = ms if state.clock is None else max(state.clock, ms)
    return state.clock


def _matches(m: Match, zone: str, e: Entry) -> bool:
    return (
        (m.category is None or e.category in m.category)
        and (m.zone is None or zone in m.zone)
        and (m.party is None or e.party in m.party)
        and (m.target is None or e.target in m.target)
        and (m.verification is None or e.verification in m.verification)
        and (m.min_severity is None or _RANK.get(e.severity, -1) >= m.min_severity.rank)
        and e.killed >= m.min_killed
        and e.wounded >= m.min_wounded
        and e.killed + e.wounded >= m.min_casualties
        and (m.civilian is None or e.civilian is m.civilian)
    )


def _labels(rule: AnyRule, zone: str, e: Entry) -> dict[str, str]:
    labels = {"zone": zone}
    if "party" in rule.group_by:
        labels["party"] = e.party
    if "category" in rule.group_by:
        labels["category"] = e.category
    return labels


def _label_keys(rule: AnyRule) -> set[str]:
    keys: set[str] = set(rule.group_by)
    if isinstance(rule, IncidentRule) and rule.severity_when_killed is not None:
        keys.add("severity")
    return keys


def _theatre(rule: AnyRule) -> bool:
    """A rule a zone's state does not evaluate (`alerting/theatre.py` does): a zone alert of
    it (the rule was per zone before) resolves as changed."""
    return isinstance(rule, FatalityPeakRule) and rule.scope == "theatre"


def _labels_fit(rule: AnyRule, event: AlertEvent) -> bool:
    return set(event.labels) == _label_keys(rule)


Predicate = Callable[[Entry], bool]


def _nothing(e: Entry) -> bool:
    return False


def _predicate(rule: AnyRule, zone: str, labels: Mapping[str, str]) -> Predicate | None:
    """A test for the rule's matching entries of one label group in `zone`; None when every
    entry of the zone qualifies (the fast path: counts are then index arithmetic)."""
    m = rule.match
    if m.zone is not None and zone not in m.zone:
        return _nothing
    checks: list[Predicate] = []
    if m.category is not None:
        categories = frozenset(str(c) for c in m.category)
        checks.append(lambda e: e.category in categories)
    if m.party is not None:
        parties = frozenset(str(p) for p in m.party)
        checks.append(lambda e: e.party in parties)
    if m.target is not None:
        targets = frozenset(m.target)
        checks.append(lambda e: e.target in targets)
    if m.verification is not None:
        verifications = frozenset(str(v) for v in m.verification)
        checks.append(lambda e: e.verification in verifications)
    if m.min_severity is not None:
        rank = m.min_severity.rank
        checks.append(lambda e: _RANK.get(e.severity, -1) >= rank)
    if m.min_killed:
        checks.append(lambda e: e.killed >= m.min_killed)
    if m.min_wounded:
        checks.append(lambda e: e.wounded >= m.min_wounded)
    if m.min_casualties:
        checks.append(lambda e: e.killed + e.wounded >= m.min_casualties)
    if m.civilian is not None:
        civilian = m.civilian
        checks.append(lambda e: e.civilian is civilian)
    if "party" in labels:
        party = labels["party"]
        checks.append(lambda e: e.party == party)
    if "category" in labels:
        category = labels["category"]
        checks.append(lambda e: e.category == category)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda e: all(check(e) for check in checks)


def _window_test(
    rule: ThresholdRule | EscalationRule, state: ZoneState, labels: Mapping[str, str]
) -> Predicate | None:
    """`_predicate`, and the incidents a windowed rule counts at all: those whose time is
    known at least as precisely as its window is long. A day known only to the day is in no
    particular hour: 12 such incidents are not "12 within 1h" (docs/alerting.md)."""
    test = _predicate(rule, state.zone, labels)
    w = rule.window.seconds * 1000
    if not state.coarse or w >= LONGEST_PRECISION_MS:
        return test  # every incident the state holds fits the window
    if test is None:
        return lambda e: PRECISION_MS[e.precision] <= w
    return lambda e: PRECISION_MS[e.precision] <= w and test(e)


def _counted(rule: ThresholdRule | EscalationRule, e: Entry) -> bool:
    """Whether `rule`'s windows count `e` at all (`_window_test`)."""
    return PRECISION_MS[e.precision] <= rule.window.seconds * 1000


def _group(
    state: ZoneState,
    rule: ThresholdRule | EscalationRule,
    labels: Mapping[str, str],
    lo: int,
) -> list[Entry]:
    """The rule's counted entries of one label group with ts > lo, by event time."""
    entries = state.after(lo)
    test = _window_test(rule, state, labels)
    return entries if test is None else [e for e in entries if test(e)]


def _recent_ids(entries: list[Entry]) -> list[str]:
    return [e.incident_id for e in entries[-MAX_INCIDENT_IDS:]]


def _append_id(ids: list[str], incident_id: str) -> list[str]:
    return [*ids, incident_id][-MAX_INCIDENT_IDS:]


# -- incident and quiet-broken rules -------------------------------------------------------


def _on_incident(
    rules: RuleSet, state: ZoneState, e: Entry, incident: AlertInput, events: list[AlertEvent]
) -> None:
    assert state.clock is not None
    clock = state.clock
    for rule in rules.active_rules:
        if not isinstance(rule, IncidentRule | QuietBrokenRule):
            continue
        if not _matches(rule.match, state.zone, e):
            continue
        labels = _incident_labels(rule, state.zone, e)
        severity = Severity(labels["severity"]) if "severity" in labels else rule.severity
        fp = fingerprint(rule.name, labels)
        recent_enough = e.ts >= clock - rule.max_age_seconds * 1000  # "more than" is too old
        hold = rule.hold.seconds * 1000
        hold_until = max(clock, e.ts) + hold

        if isinstance(rule, QuietBrokenRule):
            previous = _previous(state, rule, fp, labels, e)
            state.last_seen[fp] = (rule.name, e.ts if previous is None else max(previous, e.ts))
            active = state.active.get(fp)
            if active is not None and e.incident_id in state.left.get(fp, ()):
                # a new version of the incident that broke the quiet (a second source
                # reported it): it stays the alert's, though it no longer follows a quiet
                _keep_quiet_breaker(rule, state, active, e, incident)
                continue
            quiet_from = _quiet_from(state, previous)
            quiet = rule.quiet.seconds * 1000
            if quiet_from is None or e.ts - quiet_from < quiet or not recent_enough:
                continue
            gap_h = (e.ts - quiet_from) / 3_600_000
            active = state.active.get(fp)
            if active is not None:
                active.hold_until = max(active.hold_until or 0, hold_until)
                active.event = active.event.model_copy(
                    update={
                        "incident_ids": _append_id(active.event.incident_ids, e.incident_id),
                        "value": round(gap_h, 2),
                    }
                )
                continue
            event = AlertEvent(
                alert_id=_start(state, fp, e.incident_id),
                fingerprint=fp,
                status="firing",
                rule=rule.name,
                severity=severity,
                labels=labels,
                value=round(gap_h, 2),
                threshold=rule.quiet.seconds / 3600,
                window=str(rule.quiet),
                starts_at=from_ms(min(e.ts, clock)),  # never in the future: clock skew
                incident_ids=[e.incident_id],
                summary=quiet_summary(rule, state.zone, labels, e.ts - quiet_from, incident),
            )
            state.active[fp] = ActiveAlert(event, rule.kind, hold_until=hold_until, first=e.ts)
            events.append(event)
            continue

        came_back = e.incident_id in state.left.get(fp, ())
        if not recent_enough and not came_back:
            continue
        active = state.active.get(fp)
        if not came_back and _had_its_alert(rule, state, fp, e):
            continue
        if active is not None:
            active.matches += 1
            active.hold_until = max(active.hold_until or 0, hold_until)
            update: dict[str, Any] = {}
            if active.matches == 1:  # its only incident: it starts when that one happened
                active.first = e.ts  # (a precise report put a day report's event at its hour)
                update["starts_at"] = from_ms(min(e.ts, clock))  # never in the future
            else:  # a late report's incident may have happened before the alert started
                active.first = min(active.first_ms, e.ts)
            summary = (  # one: the incident came back (a new version) or replaced its own
                f"{capitalised(incident_text(incident))}."
                if active.matches == 1
                # since the earliest incident the alert holds, whatever its order of arrival
                else f"{matching(active.matches, rule.name, state.zone, active.first_ms)}; "
                f"the last reported: {incident_text(incident)}."
            )
            update["value"] = float(active.matches)
            active.ids.append(e.incident_id)  # in place: a mark holds a copy
            if len(active.ids) > MAX_EPISODE_IDS:
                del active.ids[0]
            update["incident_ids"] = active.ids[-MAX_INCIDENT_IDS:]
            update["summary"] = summary
            active.event = active.event.model_copy(update=update)
            continue
        event = AlertEvent(
            alert_id=_start(state, fp, e.incident_id),
            fingerprint=fp,
            status="firing",
            rule=rule.name,
            severity=severity,
            labels=labels,
            value=1.0,
            threshold=1.0,
            window=str(rule.hold),
            # never later than the clock: an incident dated ahead (clock skew) starts its
            # alert now, not in the future (Alertmanager held it active until then)
            starts_at=from_ms(min(e.ts, clock)),
            incident_ids=[e.incident_id],
            summary=f"{capitalised(incident_text(incident))}.",
        )
        state.active[fp] = ActiveAlert(
            event, rule.kind, hold_until=hold_until, ids=[e.incident_id], first=e.ts
        )
        events.append(event)


def _keep_quiet_breaker(
    rule: QuietBrokenRule, state: ZoneState, active: ActiveAlert, e: Entry, incident: AlertInput
) -> None:
    """A new version of an incident of a firing quiet-broken alert. The one that broke the
    quiet (the alert starts at its time) stays first, and where its time moved (a precise
    report joined a day report), the alert starts then and its quiet is measured to then."""
    assert state.clock is not None
    ids = [i for i in active.event.incident_ids if i != e.incident_id]
    was = state.was.get(e.incident_id)
    starts = active.first_ms  # the breaker's time (`starts_at` may be the clock's, earlier)
    if was is None or was.ts != starts or was.ts == e.ts:  # not the breaker, or not moved
        ids = _append_id(ids, e.incident_id)
        active.event = active.event.model_copy(update={"incident_ids": ids})
        return
    active.hold_until = max(active.hold_until or 0, e.ts + rule.hold.seconds * 1000)
    quiet_from = starts - round(active.event.value * 3_600_000)  # to 18 s: `value` is rounded
    gap = e.ts - quiet_from
    active.first = e.ts
    active.event = active.event.model_copy(
        update={
            "incident_ids": [e.incident_id, *ids][:MAX_INCIDENT_IDS],
            "starts_at": from_ms(min(e.ts, state.clock)),
            "value": round(gap / 3_600_000, 2),
            "summary": quiet_summary(rule, state.zone, active.event.labels, gap, incident),
        }
    )


def _incident_labels(rule: IncidentRule | QuietBrokenRule, zone: str, e: Entry) -> dict[str, str]:
    """The labels of `rule`'s alert for `e`; with `severity_when_killed`, its severity."""
    labels = _labels(rule, zone, e)
    if isinstance(rule, IncidentRule) and rule.severity_when_killed is not None:
        severity = rule.severity_when_killed if e.killed > 0 else rule.severity
        labels["severity"] = severity.value
    return labels


def _had_its_alert(rule: IncidentRule, state: ZoneState, fp: str, e: Entry) -> bool:
    """Whether a version `e` replaced in this step (its own previous version, or any
    incident merged into it) matched `rule` in the same group, out of the group's alert:
    it fired and resolved, or was too old to fire. A new version (a report joined it, an
    incident merged into it) is then not a new match: one event fires a rule once. A change
    that makes it match anew (a death: another severity label) is one."""
    iid = e.incident_id
    was = state.was.get(iid)
    before = [*([] if was is None else [was]), *state.merged.get(iid, ())]
    return any(
        _matches(rule.match, state.zone, b)
        and fingerprint(rule.name, _incident_labels(rule, state.zone, b)) == fp
        for b in before
    )


def _previous(
    state: ZoneState, rule: QuietBrokenRule, fp: str, labels: Mapping[str, str], e: Entry
) -> int | None:
    """The latest event time of a matching incident in the group before this one, if any."""
    seen = state.last_seen.get(fp)
    if seen is not None:
        return seen[1]
    # A rule new to this state: look in the index (retention covers the quiet period).
    test = _predicate(rule, state.zone, labels)
    earlier = [
        x.ts
        for x in state.incidents
        if x.incident_id != e.incident_id and (test is None or test(x))
    ]
    return max(earlier) if earlier else None


def _unsee(rules: RuleSet, state: ZoneState, gone: Entry, clock: int) -> None:
    """A withdrawn incident that was its quiet-broken group's latest: the group's latest is
    now the one before it; with none left in retention, the retention's start (quiet since
    at least then) when observation began before it, else none (as a group never seen). It
    stayed the latest, so a real incident after a withdrawn false report broke no quiet."""
    for rule in rules.active_rules:
        if not isinstance(rule, QuietBrokenRule) or not _matches(rule.match, state.zone, gone):
            continue
        labels = _incident_labels(rule, state.zone, gone)
        fp = fingerprint(rule.name, labels)
        seen = state.last_seen.get(fp)
        if seen is None or seen[1] != gone.ts:
            continue
        test = _predicate(rule, state.zone, labels)
        earlier = [x.ts for x in state.incidents if test is None or test(x)]
        if earlier:
            state.last_seen[fp] = (rule.name, max(earlier))
        elif state.since is not None:
            horizon = clock - rules.retention_seconds * 1000
            state.last_seen[fp] = (rule.name, min(horizon, seen[1]))
        else:
            del state.last_seen[fp]


def _quiet_from(state: ZoneState, previous: int | None) -> int | None:
    """Where a group's quiet period began: its latest matching incident, but never before
    observation began (`since`). Time the monitor did not watch is not known to be quiet:
    a late report of an incident from before the start (days old on a fresh start) must
    not turn the days before the start into "quiet". None: the quiet is not known (a group
    never seen, without `since`)."""
    if state.since is None:
        return previous
    return state.since if previous is None else max(previous, state.since)


# -- windowed rules ------------------------------------------------------------------------


def _on_windows(
    rules: RuleSet, state: ZoneState, fresh: list[Entry], events: list[AlertEvent]
) -> None:
    assert state.clock is not None
    clock = state.clock
    for rule in rules.active_rules:
        if not isinstance(rule, ThresholdRule | EscalationRule):
            continue
        w = rule.window.seconds * 1000
        # label group -> the batch's new incidents in the current window, in arrival order
        groups: dict[tuple[tuple[str, str], ...], list[Entry]] = {}
        for e in fresh:
            if e.ts > clock - w and _counted(rule, e) and _matches(rule.match, state.zone, e):
                key = tuple(sorted(_labels(rule, state.zone, e).items()))
                groups.setdefault(key, []).append(e)
        for key, added in groups.items():
            labels = dict(key)
            fp = fingerprint(rule.name, labels)
            check = _check(rule, state, labels)
            if check is None:
                continue
            active = state.active.get(fp)
            if active is not None:
                update: dict[str, Any] = {
                    "value": check.value,
                    "threshold": check.threshold,
                    "incident_ids": check.ids,
                }
                if check.holds:
                    update["summary"] = check.summary
                active.event = active.event.model_copy(update=update)
                continue
            if not check.holds:
                continue
            # The trigger is the incident with which the count reached the level, as if the
            # batch had been evaluated one incident at a time: the alert id does not depend
            # on how incidents were batched.
            before = int(check.value) - len(added)
            trigger = added[min(len(added) - 1, max(0, check.needed - before - 1))]
            event = AlertEvent(
                alert_id=_start(state, fp, trigger.incident_id),
                fingerprint=fp,
                status="firing",
                rule=rule.name,
                severity=rule.severity,
                labels=labels,
                value=check.value,
                threshold=check.threshold,
                window=str(rule.window),
                starts_at=from_ms(clock),
                incident_ids=check.ids,
                summary=check.summary,
            )
            state.active[fp] = ActiveAlert(event, rule.kind)
            events.append(event)


class _Check(NamedTuple):
    holds: bool
    value: float
    threshold: float
    #: The smallest count at which the condition holds.
    needed: int
    ids: list[str]
    summary: str


def _check(
    rule: ThresholdRule | EscalationRule, state: ZoneState, labels: Mapping[str, str]
) -> _Check | None:
    """A windowed rule's condition for one label group at the state's clock; None when it
    cannot be evaluated (no baseline observed yet)."""
    assert state.clock is not None
    clock = state.clock
    w = rule.window.seconds * 1000
    noun = what(labels, rule.match, plural=True)
    if isinstance(rule, ThresholdRule):
        current = _group(state, rule, labels, clock - w)
        thr = rule.threshold_for(state.zone)
        count = len(current)
        summary = (
            f"{count} {noun} in zone {state.zone} within {rule.window} (threshold {thr})"
            if count >= thr
            else f"{count} {noun} in zone {state.zone} within {rule.window}, "
            f"below the threshold of {thr}"
        )
        return _Check(
            count >= thr, float(count), float(thr), thr, _recent_ids(current), summary + "."
        )
    windows = rule.baseline_windows
    if state.since is not None:
        windows = min(windows, max(0, (clock - w - state.since) // w))
    if windows == 0:
        return None
    entries = _group(state, rule, labels, clock - w - windows * w)
    current = [e for e in entries if e.ts > clock - w]
    count = len(current)
    mean = (len(entries) - count) / windows
    level = max(rule.factor * mean, float(rule.min_count))
    # count >= factor x mean and count >= min_count, immune to float noise in the product
    needed = max(math.ceil(rule.factor * mean - 1e-9), rule.min_count)
    holds = count >= needed
    base = rule.baseline if windows == rule.baseline_windows else f"{windows}x{rule.window}"
    if mean > 0:
        history = (
            f"{count / mean:.1f}x the mean of {mean:.1f} per {rule.window} over the previous {base}"
        )
    else:
        history = f"none in the previous {base}"
    summary = (
        f"{count} {noun} in zone {state.zone} within {rule.window}, {history} "
        f"(alert at {rule.factor:g}x the mean and at least {rule.min_count})"
    )
    if not holds:
        summary = f"{summary}; below the escalation level"
    return _Check(holds, float(count), round(level, 3), needed, _recent_ids(current), summary + ".")


# -- fatality peaks -----------------------------------------------------------------------


def _on_fatalities(rules: RuleSet, state: ZoneState, events: list[AlertEvent]) -> None:
    """fatality_peak rules after the ledger changed: fire on a record 30-day sum."""
    assert state.clock is not None
    clock = state.clock
    day = day_of(clock / 1000)
    observed_from = first_whole_day(state.since)
    for rule in rules.zone_fatality_rules:
        labels = {"zone": state.zone}
        fp = fingerprint(rule.name, labels)
        a = assess_peak(state.fatalities, day, rule, observed_from)
        active = state.active.get(fp)
        if active is not None:
            if a.total >= active.event.threshold:  # else it resolves at the step's end
                active.event = peak_refreshed(
                    rule,
                    active.event,
                    a,
                    latest_fatal(state.fatalities.incidents.items(), day, rule.window_days),
                    f"{a.total} killed in zone {state.zone}",
                    "",
                )
            continue
        if not peak_fires(a, state.peaks.get(rule.name), day, rule):
            continue
        event = peak_event(
            rule,
            fp,
            labels,
            a,
            day,
            clock,
            latest_fatal(state.fatalities.incidents.items(), day, rule.window_days),
            f"{a.total} killed in zone {state.zone}",
            "",
        )
        state.active[fp] = ActiveAlert(event, rule.kind)
        state.peaks[rule.name] = day
        events.append(event)


# -- resolution -------------------------------------------------------------------------


def _resolve(
    rules: RuleSet, state: ZoneState, events: list[AlertEvent], *, emptied: bool = True
) -> None:
    """The alerts that resolve at the clock, and (`emptied`) the held ones that no
    incident is left in (`ZoneState.forget`), appended to `events`."""
    assert state.clock is not None
    clock = state.clock
    for fp, active in sorted(state.active.items(), key=lambda kv: kv[1].event.starts_at):
        event = active.event
        rule = rules.rule(event.rule)
        ends_at: int | None = None
        summary = ""
        if (
            rule is None
            or rule.kind != active.kind
            or not _labels_fit(rule, event)
            or _theatre(rule)
        ):
            ends_at = clock
            summary = f"Resolved: rule {event.rule} was removed, disabled or changed."
        elif isinstance(rule, IncidentRule | QuietBrokenRule):
            until = active.hold_until if active.hold_until is not None else clock
            left = active.matches > 0 if isinstance(rule, IncidentRule) else event.incident_ids
            if emptied and not left:
                ends_at = clock
                summary = (
                    f"Resolved: no incident of this alert matches {rule.name} in zone "
                    f"{state.zone} any longer (withdrawn, merged into another, or revised)."
                )
            elif clock >= until:
                ends_at = until
                if isinstance(rule, IncidentRule):
                    n = active.matches
                    summary = (
                        f"Resolved: no new incident matching {rule.name} in zone {state.zone} "
                        f"for {rule.hold} ({n} matching incident{'s' if n != 1 else ''} "
                        f"in this alert)."
                    )
                else:
                    summary = (
                        f"Resolved {rule.hold} after the quiet period in zone {state.zone} "
                        f"was broken."
                    )
        elif isinstance(rule, FatalityPeakRule):
            day = day_of(clock / 1000)
            beaten = int(event.threshold)
            if still_record(state.fatalities, day, window=rule.window_days, beaten=beaten):
                continue
            total = state.fatalities.window_sums(day, day, rule.window_days)[0]
            ends_at = clock
            event = event.model_copy(update={"value": float(total)})
            summary = peak_resolved_summary(rule, total, f"in zone {state.zone}", day, beaten)
        else:
            check = _check(rule, state, event.labels)
            if check is None:
                continue
            if check.holds:  # the count moved (a withdrawal, a merge, the clock): say it
                active.event = event.model_copy(
                    update={
                        "value": check.value,
                        "threshold": check.threshold,
                        "incident_ids": check.ids,
                        "summary": check.summary,
                    }
                )
                continue
            ends_at = clock
            # the incidents still counted: the one that left the window is no longer behind it
            update = {"value": check.value, "threshold": check.threshold, "incident_ids": check.ids}
            event = event.model_copy(update=update)
            summary = f"Resolved: {check.summary}"
        if ends_at is None:
            continue
        # `starts_at` is never after the clock that fired it, so `ends_at` is the moment it
        # resolved; a state from before that was so may hold one after: it starts then
        resolved = event.model_copy(
            update={
                "status": "resolved",
                "starts_at": from_ms(min(to_ms(event.starts_at), ends_at)),
                "ends_at": from_ms(ends_at),
                "summary": summary,
            }
        )
        events.append(resolved)
        del state.active[fp]
