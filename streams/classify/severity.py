"""Severity and the provision breached, by category.

| category | base severity | provision of the 9/10 Nov 2020 statement |
|---|---|---|
| small_arms_fire | medium | complete ceasefire |
| heavy_weapons_fire | high | complete ceasefire |
| drone_strike | high | complete ceasefire |
| airspace_violation | low | complete ceasefire |
| positional_advance | high | parties stop at current positions |
| engineering_works | low | parties stop at current positions |
| obstruction_of_movement | medium | security of movement on the Lachin corridor |
| attack_on_peacekeepers | critical (always) | peacekeeping deployment |
| civilian_harm | high | return of displaced persons |
| detention | medium | exchange of prisoners and bodies |
| property_destruction | medium | return of displaced persons |
| mine_incident | medium | complete ceasefire |
| other | low | unspecified |

Casualties raise it: anyone killed makes it `critical`; anyone wounded makes it at least `high`.
The provision is the part of the statement the category breaches; `other` breaches no
particular one ("unspecified"). docs/zones.md carries the same table.
"""

from __future__ import annotations

from schemas.codes import Category, Severity

BASE_SEVERITY: dict[Category, Severity] = {
    Category.SMALL_ARMS_FIRE: Severity.MEDIUM,
    Category.HEAVY_WEAPONS_FIRE: Severity.HIGH,
    Category.DRONE_STRIKE: Severity.HIGH,
    Category.AIRSPACE_VIOLATION: Severity.LOW,
    Category.POSITIONAL_ADVANCE: Severity.HIGH,
    Category.ENGINEERING_WORKS: Severity.LOW,
    Category.OBSTRUCTION_OF_MOVEMENT: Severity.MEDIUM,
    Category.ATTACK_ON_PEACEKEEPERS: Severity.CRITICAL,
    Category.CIVILIAN_HARM: Severity.HIGH,
    Category.DETENTION: Severity.MEDIUM,
    Category.PROPERTY_DESTRUCTION: Severity.MEDIUM,
    Category.MINE_INCIDENT: Severity.MEDIUM,
    Category.OTHER: Severity.LOW,
}

_CEASEFIRE = "complete ceasefire"
_POSITIONS = "parties stop at current positions"
_RETURN = "return of displaced persons"
PROVISION: dict[Category, str] = {
    Category.SMALL_ARMS_FIRE: _CEASEFIRE,
    Category.HEAVY_WEAPONS_FIRE: _CEASEFIRE,
    Category.DRONE_STRIKE: _CEASEFIRE,
    Category.AIRSPACE_VIOLATION: _CEASEFIRE,
    Category.POSITIONAL_ADVANCE: _POSITIONS,
    Category.ENGINEERING_WORKS: _POSITIONS,
    Category.OBSTRUCTION_OF_MOVEMENT: "security of movement on the Lachin corridor",
    Category.ATTACK_ON_PEACEKEEPERS: "peacekeeping deployment",
    Category.CIVILIAN_HARM: _RETURN,
    Category.DETENTION: "exchange of prisoners and bodies",
    Category.PROPERTY_DESTRUCTION: _RETURN,
    Category.MINE_INCIDENT: _CEASEFIRE,
    Category.OTHER: "unspecified",
}


def severity(category: Category, killed: int, wounded: int) -> Severity:
    """The category's base severity, raised by casualties: anyone killed -> critical,
    anyone wounded -> at least high. An attack on peacekeepers is always critical."""
    if killed > 0 or category is Category.ATTACK_ON_PEACEKEEPERS:
        return Severity.CRITICAL
    base = BASE_SEVERITY[category]
    if wounded > 0 and base.rank < Severity.HIGH.rank:
        return Severity.HIGH
    return base
