"""Fatality-peak alerts, what a zone's rules (`alerting/engine.py`) and the theatre's
(`alerting/theatre.py`) share: whether a record fires (`assess_peak`, `peak_fires`), the
incidents it names (`latest_fatal`), its event when it fires (`peak_event`), as its figure
changes (`peak_refreshed`), and the words it resolves with (`peak_resolved_summary`). The
test itself is `alerting/fatality.py`'s."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from alerting.alert_ids import alert_id_for
from alerting.fatality import Assessment, FatalityLedger, assess, day_of
from alerting.rules import FatalityPeakRule
from alerting.times import EPOCH, from_ms, to_ms
from schemas.alert import MAX_INCIDENT_IDS, AlertEvent


def assess_peak(
    ledger: FatalityLedger, day: int, rule: FatalityPeakRule, observed_from: int | None
) -> Assessment:
    return assess(
        ledger,
        day,
        window=rule.window_days,
        lookback=rule.lookback_days,
        minimum=rule.minimum,
        observed_from=observed_from,
    )


def peak_fires(a: Assessment, last_fired: int | None, day: int, rule: FatalityPeakRule) -> bool:
    """A record sum, and not within the cooldown of the rule's last firing here."""
    return a.record and (last_fired is None or day - last_fired >= rule.cooldown_days)


def latest_fatal(
    entries: Iterable[tuple[str, tuple[int, int]]], day: int, window: int
) -> list[str]:
    """The ledger keys of the fatal incidents in the window ending on `day`, latest first
    (as many as an alert names)."""
    recent = sorted(((d, key) for key, (d, _) in entries if day - window < d <= day), reverse=True)
    return [key for _, key in recent[:MAX_INCIDENT_IDS]]


def peak_event(
    rule: FatalityPeakRule,
    fp: str,
    labels: dict[str, str],
    a: Assessment,
    day: int,
    clock: int,
    ids: list[str],
    what: str,
    most: str,
) -> AlertEvent:
    """A fatality-peak alert firing on `day`: `what` says whose deaths ("12 killed in zone
    x"), `most` adds where most were (the theatre's)."""
    return AlertEvent(
        # the day tells episodes apart: with a cooldown shorter than the window, a second
        # episode could start from the same latest incident, and took the first one's id
        alert_id=alert_id_for(fp, ids[0] if ids else str(day), day),
        fingerprint=fp,
        status="firing",
        rule=rule.name,
        severity=rule.severity,
        labels=labels,
        value=float(a.total),
        threshold=float(a.threshold),
        window=str(rule.window),
        starts_at=from_ms(clock),
        incident_ids=ids,
        summary=_peak_summary(rule, a, what, most),
    )


def _peak_summary(rule: FatalityPeakRule, a: Assessment, what: str, most: str) -> str:
    return (
        f"{what} in the {rule.window} to {_day_text(a.day)}{most}: the highest "
        f"{rule.window} figure of the past {rule.lookback} (previous high {a.peak}, "
        f"minimum {rule.minimum})."
    )


def peak_refreshed(
    rule: FatalityPeakRule,
    event: AlertEvent,
    a: Assessment,
    ids: list[str],
    what: str,
    most: str,
) -> AlertEvent:
    """A firing fatality-peak alert whose figure changed (a death reported, a revision)
    and still reaches the figure it beat: its `value`, `incident_ids` and `summary` say the
    figure of `a.day` (updated silently, as other rules' alerts are). On a day after the
    record, the figure may no longer be the highest of the lookback: the summary then says
    what it still reaches."""
    if a.record:
        summary = _peak_summary(rule, a, what, most)
    else:
        fired = _day_text(day_of(to_ms(event.starts_at) / 1000))
        beaten = int(event.threshold)
        summary = (
            f"{what} in the {rule.window} to {_day_text(a.day)}{most}: still at least "
            f"{beaten}, {_beaten(rule, beaten)} its record of {fired} had to reach."
        )
    update = {"value": float(a.total), "incident_ids": ids, "summary": summary}
    if all(getattr(event, k) == v for k, v in update.items()):
        return event
    return event.model_copy(update=update)


def peak_resolved_summary(
    rule: FatalityPeakRule, total: int, where: str, day: int, beaten: int
) -> str:
    """The closing summary of a fatality-peak alert whose figure fell below the one it
    beat (`beaten`: the previous high or the minimum, whichever was higher)."""
    return (
        f"Resolved: {total} killed {where} in the {rule.window} to {_day_text(day)}, below "
        f"{beaten}, {_beaten(rule, beaten)} its record had to reach."
    )


def _beaten(rule: FatalityPeakRule, beaten: int) -> str:
    """What a record's threshold was: the rule's minimum, or the previous high above it."""
    return "the minimum" if beaten == rule.minimum else "the previous high"


def _day_text(day: int) -> str:
    return (EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
