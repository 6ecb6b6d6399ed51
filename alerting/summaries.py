"""The words of a zone alert's summary: how an incident reads (what, by whom, against
whom, where, when, casualties, verification and source), how a rule's label group and an
incident alert's count read, and the summary of a broken quiet period."""

from __future__ import annotations

from collections.abc import Mapping

from alerting.rules import Match, QuietBrokenRule
from alerting.times import from_ms
from schemas.alert_input import AlertInput


def _human(code: str) -> str:
    return code.replace("_", " ")


def _when(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M UTC")


def _hours(ms: int) -> str:
    h = ms / 3_600_000
    return f"{h:.0f} h" if h >= 10 else f"{h:.1f} h"


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def what(labels: Mapping[str, str], match: Match, plural: bool = False) -> str:
    """'incidents of heavy weapons fire by az' for a label group."""
    noun = "incidents" if plural else "incident"
    if "category" in labels:
        noun += f" of {_human(labels['category'])}"
    elif match.category is not None and len(match.category) == 1:
        noun += f" of {_human(match.category[0])}"
    if "party" in labels:
        noun += f" by {labels['party']}"
    return noun


def matching(n: int, rule: str, zone: str, since_ms: int) -> str:
    """How an incident alert counts its incidents, in its summary."""
    plural = "" if n == 1 else "s"
    return f"{n} incident{plural} matching {rule} in zone {zone} since {_when(since_ms)}"


def incident_text(i: AlertInput) -> str:
    text = _human(str(i.category))
    # "by unknown" read as if someone unknown was established; a contested incident (the
    # parties accuse each other) reads as unknown here too: no one is named
    if str(i.perpetrator) != "unknown":
        text += f" by {i.perpetrator}"
    if str(i.target) != "unknown":
        text += f" against {i.target}"
    text += f" in zone {i.zone}"
    if i.place:
        text += f" ({i.place})"
    text += f" at {_when(i.occurred_ms)}"
    casualties = []
    if i.killed:
        casualties.append(f"{i.killed} killed")
    if i.wounded:
        casualties.append(f"{i.wounded} wounded")
    if casualties:
        text += ", " + " and ".join(casualties) + (" (civilians)" if i.civilian else "")
    # the incident's verification, and the source of the report that stands for it here:
    # "observed by az-mod" read as if a party's statement had observed it
    text += f"; {i.verification}, report from {i.source}"
    return text


def quiet_summary(
    rule: QuietBrokenRule, zone: str, labels: Mapping[str, str], gap: int, i: AlertInput
) -> str:
    return (
        f"First {what(labels, rule.match)} in zone {zone} after {_hours(gap)} of quiet "
        f"(quiet period {rule.quiet}): {incident_text(i)}."
    )
