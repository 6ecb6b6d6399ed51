"""A realistic, seeded synthetic report stream.

What the stream looks like, and why:

* **Zones with their own tempo.** The line-of-contact sectors (north, east, south)
  carry most of the fire; the Lachin corridor mostly sees obstruction of movement,
  detentions and the odd shot; the returned districts (Aghdam, Kalbajar, Lachin) mostly
  mine and UXO incidents; the Armenia-Azerbaijan border sectors (Syunik, Gegharkunik,
  Tavush) fire, engineering works and positional advances. Points are jittered a few
  km around the gazetteer's places (corridor points are taken along the road itself).
* **Sources that behave like their real counterparts.** Russian peacekeeping
  observation posts report in their own sector, quickly, and often cannot attribute
  fire (`unknown`). Party statements arrive hours later, in local time (+04:00), and
  accuse the other side in their own words ("Armenian Armed Forces", "AZ MoD",
  "Artsakh Defence Army", and now and then a phrase no alias list knows). The joint
  monitoring centre near Aghdam attributes with party codes; demining NGOs report mines.
* **Casualties are rare**: someone killed in about 2 % of reports, wounded in about 5 %.
* **Bursts**: now and then a zone flares up, and for up to an hour of simulated time
  (or a few dozen reports) most reports come from it, with more heavy fire and more
  casualties.
* **Late reports**: about 4 % occurred days before they are sent (on top of the usual
  minutes-to-hours lag of each kind of source).
* **Exact duplicates**: about 3 % of messages re-send an earlier report verbatim.
* **Malformed input** only when asked for (`malformed_ratio > 0`): typos in field
  names, naive times, swapped coordinates, unknown categories, an unknown place,
  truncated JSON, non-UTF-8 bytes...

Everything is drawn from `random.Random(seed)` and a simulated clock: with a `start`,
the same seed gives the same stream, byte for byte, whatever the wall clock says.
Without one the clock is the real clock (live use): every `occurred_at` and
`reported_at` then lies at or before the real now.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from streams.config import Settings

#: Baku and Yerevan both keep UTC+4; the parties' statements and local media use it.
LOCAL_TZ = timezone(timedelta(hours=4))

#: Gazetteer points (lat, lon). Only these names are ever sent as `location.place`.
PLACES: dict[str, tuple[float, float]] = {
    "Stepanakert": (39.815, 46.752),
    "Shusha": (39.758, 46.748),
    "Lachin": (39.640, 46.545),
    "Aghdam": (39.993, 46.930),
    "Martuni": (39.795, 47.113),
    "Martakert": (40.213, 46.813),
    "Askeran": (39.935, 46.787),
    "Hadrut": (39.520, 47.030),
    "Kalbajar": (40.107, 46.038),
    "Goris": (39.511, 46.339),
    "Kornidzor": (39.545, 46.430),
}

#: The Lachin corridor road, Stepanakert to the Armenian border near Kornidzor.
CORRIDOR_ROAD: tuple[tuple[float, float], ...] = (
    (39.815, 46.752),  # Stepanakert
    (39.758, 46.748),  # Shusha
    (39.700, 46.640),
    (39.640, 46.545),  # Lachin / Berdzor
    (39.600, 46.480),
    (39.545, 46.430),  # Kornidzor border crossing
)

#: Local names the sides use in free text (descriptions only, never in `location`).
LOCAL_NAMES: dict[str, dict[str, str]] = {
    "az": {
        "Stepanakert": "Khankendi",
        "Martakert": "Aghdara",
        "Martuni": "Khojavend",
        "Lachin": "Lachin",
    },
    "am": {"Shusha": "Shushi", "Lachin": "Berdzor", "Kalbajar": "Karvachar"},
}

# category codes (schemas.codes.Category), short names for the tables below
SMALL_ARMS, HEAVY = "small_arms_fire", "heavy_weapons_fire"
DRONE, AIRSPACE = "drone_strike", "airspace_violation"
ADVANCE, WORKS, OBSTRUCTION = "positional_advance", "engineering_works", "obstruction_of_movement"
PKF_ATTACK, CIV_HARM, DETENTION = "attack_on_peacekeepers", "civilian_harm", "detention"
PROPERTY, MINE, OTHER = "property_destruction", "mine_incident", "other"

#: What acoustic and radar sensors can pick up.
SENSED = (SMALL_ARMS, HEAVY, DRONE, AIRSPACE, MINE, OTHER)

_FIRE_MIX: dict[str, float] = {
    SMALL_ARMS: 46,
    HEAVY: 7,
    DRONE: 3,
    AIRSPACE: 6,
    ADVANCE: 3,
    WORKS: 9,
    OBSTRUCTION: 2,
    PKF_ATTACK: 0.6,
    CIV_HARM: 3,
    DETENTION: 1,
    PROPERTY: 3,
    MINE: 4,
    OTHER: 3,
}


@dataclass(frozen=True)
class SimZone:
    """One area of the theatre as the simulator sees it (not the classifier's polygons)."""

    code: str
    rate: float  # relative base rate of incidents
    #: (place name or None, lat, lon, weight); a None name is never sent as a place
    sites: tuple[tuple[str | None, float, float, float], ...]
    categories: dict[str, float]
    #: the two sides facing each other here, as party codes
    sides: tuple[str, str]
    jitter_km: float = 3.0
    along_road: bool = False


ZONES: tuple[SimZone, ...] = (
    SimZone(
        "loc-north",
        3.0,
        (
            ("Martakert", *PLACES["Martakert"], 3),
            (None, 40.160, 46.900, 1),
            (None, 40.270, 46.760, 1),
        ),
        _FIRE_MIX,
        ("az", "nk"),
    ),
    SimZone(
        "loc-east",
        3.5,
        (
            ("Askeran", *PLACES["Askeran"], 3),
            ("Aghdam", *PLACES["Aghdam"], 1),
            (None, 39.960, 46.860, 2),
        ),
        _FIRE_MIX,
        ("az", "nk"),
    ),
    SimZone(
        "loc-south",
        3.0,
        (
            ("Martuni", *PLACES["Martuni"], 3),
            ("Hadrut", *PLACES["Hadrut"], 2),
            (None, 39.650, 47.060, 1),
        ),
        _FIRE_MIX,
        ("az", "nk"),
    ),
    SimZone(
        "lachin-corridor",
        1.8,
        (
            ("Lachin", *PLACES["Lachin"], 2),
            ("Kornidzor", *PLACES["Kornidzor"], 1),
            ("Shusha", *PLACES["Shusha"], 1),
        ),
        {
            OBSTRUCTION: 30,
            DETENTION: 8,
            SMALL_ARMS: 10,
            CIV_HARM: 5,
            PKF_ATTACK: 1.5,
            AIRSPACE: 4,
            WORKS: 4,
            MINE: 2,
            PROPERTY: 2,
            OTHER: 6,
        },
        ("az", "nk"),
        jitter_km=0.8,
        along_road=True,
    ),
    SimZone(
        "shusha",
        0.8,
        (("Shusha", *PLACES["Shusha"], 1),),
        {SMALL_ARMS: 20, WORKS: 6, AIRSPACE: 4, CIV_HARM: 4, PROPERTY: 3, OBSTRUCTION: 3, OTHER: 3},
        ("az", "nk"),
        jitter_km=1.5,
    ),
    SimZone(
        "stepanakert",
        0.7,
        (("Stepanakert", *PLACES["Stepanakert"], 1),),
        {AIRSPACE: 10, DRONE: 3, CIV_HARM: 8, SMALL_ARMS: 6, PROPERTY: 4, DETENTION: 2, OTHER: 4},
        ("az", "nk"),
        jitter_km=2.0,
    ),
    SimZone(
        "returned-districts",
        1.6,
        (
            ("Aghdam", *PLACES["Aghdam"], 3),
            ("Kalbajar", *PLACES["Kalbajar"], 2),
            (None, 39.580, 46.620, 1),  # Lachin district south of the road
            (None, 39.440, 46.780, 1),  # Zangilan/Qubadli side
        ),
        {MINE: 40, PROPERTY: 6, SMALL_ARMS: 6, WORKS: 6, CIV_HARM: 4, OTHER: 4},
        ("az", "nk"),
        jitter_km=5.0,
    ),
    SimZone(
        "border-syunik",
        1.2,
        (("Goris", *PLACES["Goris"], 2), (None, 39.380, 46.400, 2), (None, 39.800, 45.980, 1)),
        {SMALL_ARMS: 30, HEAVY: 5, ADVANCE: 6, WORKS: 10, DRONE: 2, DETENTION: 2, OTHER: 3},
        ("az", "am"),
        jitter_km=4.0,
    ),
    SimZone(
        "border-gegharkunik",
        0.9,
        ((None, 40.200, 45.930, 2), (None, 40.050, 45.800, 1)),  # Sotk, Verin Shorzha
        {SMALL_ARMS: 30, HEAVY: 4, ADVANCE: 5, WORKS: 8, DRONE: 2, OTHER: 3},
        ("az", "am"),
        jitter_km=3.0,
    ),
    SimZone(
        "border-tavush",
        0.6,
        ((None, 40.950, 45.300, 1), (None, 40.870, 45.400, 1)),  # Berd, Aygepar / Tovuz side
        {SMALL_ARMS: 35, HEAVY: 3, WORKS: 8, AIRSPACE: 2, OTHER: 3},
        ("az", "am"),
        jitter_km=3.0,
    ),
)
ZONE_BY_CODE = {z.code: z for z in ZONES}

#: Probability that a report of the category has someone killed / wounded (outside bursts).
#: Tuned so that about 2 % of all reports have someone killed and about 5 % wounded.
CASUALTY_ODDS: dict[str, tuple[float, float]] = {
    SMALL_ARMS: (0.009, 0.027),
    HEAVY: (0.045, 0.11),
    DRONE: (0.12, 0.18),
    PKF_ATTACK: (0.09, 0.25),
    CIV_HARM: (0.08, 0.21),
    MINE: (0.04, 0.085),
    DETENTION: (0.0, 0.02),
    PROPERTY: (0.0, 0.015),
}


@dataclass(frozen=True)
class Source:
    name: str
    source_type: str
    weight: float
    zones: tuple[str, ...] = ()  # where it reports; empty: anywhere
    #: which side the source speaks for (party statements), or None
    side: str | None = None
    #: typical minutes between event and report (mean of an exponential)
    lag_minutes: float = 15.0
    local_time: bool = False


_KARABAKH = ("loc-north", "loc-east", "loc-south", "lachin-corridor", "shusha", "stepanakert")
_BORDER = ("border-syunik", "border-gegharkunik", "border-tavush")

SOURCES: tuple[Source, ...] = (
    Source("pkf-op-03", "observation_post", 3, ("loc-north",), lag_minutes=8),
    Source("pkf-op-07", "observation_post", 3, ("loc-east",), lag_minutes=8),
    Source("pkf-op-12", "observation_post", 3, ("loc-east", "returned-districts"), lag_minutes=8),
    Source("pkf-op-18", "observation_post", 3, ("loc-south",), lag_minutes=8),
    Source("pkf-op-21", "observation_post", 2, ("lachin-corridor", "shusha"), lag_minutes=8),
    Source("pkf-op-26", "observation_post", 1.5, ("stepanakert", "shusha"), lag_minutes=8),
    Source("pkf-patrol-2", "patrol", 2, ("lachin-corridor",), lag_minutes=25),
    Source("pkf-patrol-5", "patrol", 1.5, ("loc-east", "loc-south"), lag_minutes=25),
    Source("sensor-net-1", "sensor", 1.5, ("lachin-corridor", "loc-east"), lag_minutes=0.5),
    Source("jmc-aghdam", "monitoring_centre", 2, _KARABAKH, lag_minutes=60),
    Source("az-mod", "party_statement", 1.8, (), side="az", lag_minutes=120, local_time=True),
    Source("am-mod", "party_statement", 1.5, _BORDER, side="am", lag_minutes=120, local_time=True),
    Source(
        "nk-defence-army",
        "party_statement",
        2,
        _KARABAKH,
        side="nk",
        lag_minutes=180,
        local_time=True,
    ),
    Source("media-apa", "media", 0.6, (), lag_minutes=180, local_time=True),
    Source("media-armenpress", "media", 0.6, (), lag_minutes=180, local_time=True),
    Source(
        "hotline-civ",
        "civilian",
        0.8,
        ("stepanakert", "shusha", "lachin-corridor", "returned-districts", "border-syunik"),
        lag_minutes=45,
    ),
    Source(
        "ngo-halo-demining",
        "ngo",
        0.7,
        ("returned-districts", "loc-east", "loc-south"),
        lag_minutes=1440,
    ),
)
SOURCE_BY_NAME = {s.name: s for s in SOURCES}

#: How each side names the other in its statements (mostly matched aliases, a few
#: phrases no alias list knows: they map to `unknown` and are kept verbatim).
ACCUSES: dict[str, dict[str, tuple[str, ...]]] = {
    "az": {
        "nk": (
            "Armenian Armed Forces",
            "illegal Armenian armed detachments",
            "Artsakh Defence Army",
            "Armenia",
            "local Armenian formations",
        ),
        "am": ("Armenian Armed Forces", "AM MoD", "Armenia", "Armed Forces of Armenia"),
    },
    "am": {"az": ("Azerbaijani Armed Forces", "AZ MoD", "Azerbaijan", "the Azerbaijani side")},
    "nk": {"az": ("Azerbaijani Armed Forces", "Azerbaijan", "AFA", "units of the adversary")},
}
#: How each side names itself as the target of the other's fire.
SELF_NAMES: dict[str, tuple[str, ...]] = {
    "az": ("Azerbaijani Armed Forces", "Azerbaijan", "AZ MoD"),
    "am": ("Armenian Armed Forces", "Armenia", "AM MoD"),
    "nk": ("Artsakh Defence Army", "NK Defense Army"),
}
#: How the mission and third parties name a side.
NEUTRAL_NAMES: dict[str, tuple[str, ...]] = {
    "az": ("az", "Azerbaijan", "Azerbaijani Armed Forces"),
    "am": ("am", "Armenia", "Armenian Armed Forces"),
    "nk": ("nk", "NK Defense Army", "Artsakh Defence Army"),
}
PEACEKEEPERS = ("Russian peacekeepers", "RPKF", "ru-pkf", "15th Motorised Rifle Brigade")

WHAT: dict[str, tuple[str, ...]] = {
    SMALL_ARMS: (
        "fire from small arms",
        "sniper fire",
        "automatic weapons fire",
        "bursts of machine-gun fire",
    ),
    HEAVY: ("mortar fire", "artillery fire", "fire from a tank", "122 mm howitzer fire"),
    DRONE: ("a strike by an armed UAV", "a loitering munition strike", "a drone strike"),
    AIRSPACE: (
        "a UAV overflight",
        "a reconnaissance drone over the positions",
        "an overflight by a quadcopter",
    ),
    ADVANCE: (
        "troops moving beyond their positions",
        "a unit advancing towards the line",
        "an attempt to occupy a height",
    ),
    WORKS: (
        "new trenches being dug",
        "fortification works near the line",
        "an engineering vehicle building a new position",
    ),
    OBSTRUCTION: (
        "the road being blocked",
        "vehicles stopped at an improvised checkpoint",
        "a peacekeeping convoy being held up",
    ),
    PKF_ATTACK: (
        "fire at a peacekeeping post",
        "stones thrown at a peacekeepers' patrol",
        "shots at a peacekeepers' vehicle",
    ),
    CIV_HARM: (
        "fire at farmers in the fields",
        "shots at a civilian car",
        "threats against residents",
    ),
    DETENTION: (
        "the detention of two residents",
        "a serviceman captured",
        "civilians taken at a checkpoint",
    ),
    PROPERTY: ("houses set on fire", "a water pipeline damaged", "a power line cut"),
    MINE: (
        "an anti-personnel mine explosion",
        "a tractor hitting an anti-tank mine",
        "newly laid mines found",
        "an unexploded shell going off",
    ),
    OTHER: (
        "an unidentified explosion",
        "flares launched over the positions",
        "loudspeaker broadcasts across the line",
    ),
}


@dataclass
class Burst:
    """A zone flaring up: most reports come from it until the count or the hour runs out."""

    zone: str
    started: datetime
    ends: datetime
    left: int
    size: int


@dataclass
class SimStats:
    reports: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    bursts: int = 0
    by_zone: Counter[str] = field(default_factory=Counter)


class Simulator:
    """A seeded synthetic stream of incident reports.

    `Simulator(seed, start)`: with `start`, a simulated clock that begins there and
    moves on 1/`rate` s per message: deterministic. Without it, the real clock.
    `malformed_ratio`: share of deliberately malformed messages (default none).
    """

    DUPLICATE_RATIO = 0.03
    VERY_LATE_RATIO = 0.04
    BURST_START = 0.003  # chance per message that a zone flares up (when none does)

    def __init__(
        self,
        seed: int = 2020,
        start: datetime | None = None,
        *,
        malformed_ratio: float = 0.0,
    ) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0.0 <= malformed_ratio < 1.0:
            raise ValueError("malformed_ratio must be in [0, 1)")
        self.rng = random.Random(seed)
        self._live = start is None
        self.clock: datetime = start if start is not None else datetime.now(UTC)
        self.malformed_ratio = malformed_ratio
        # Report ids carry a run tag, so a second run (another start, or a later live
        # run with the same seed) is not silently de-duplicated against the first.
        self.run_tag = f"{seed}-{int(self.clock.timestamp()):x}"
        self._serial: Counter[str] = Counter()
        self._recent: list[tuple[dict[str, Any], bytes]] = []
        self.burst: Burst | None = None
        self.bursts: list[Burst] = []
        self.stats = SimStats()
        self.last: dict[str, Any] | None = None
        self._zone_weights = [z.rate for z in ZONES]
        self._source_weights = [s.weight for s in SOURCES]

    # -- the stream ---------------------------------------------------------------
    def reports(self, n: int | None = None, *, rate: float = 20.0) -> Iterator[dict[str, Any]]:
        """`n` report dicts (forever when None), the simulated clock advancing 1/rate s
        each. Malformed messages that are not JSON objects are skipped here (see
        `messages`); malformed objects are yielded as they are."""
        count = 0
        for doc, _raw in self.stream(rate):
            if doc is None:
                continue
            yield doc
            count += 1
            if n is not None and count >= n:
                return

    def messages(self, n: int | None = None, *, rate: float = 20.0) -> Iterator[bytes]:
        """`n` encoded messages as they would be sent, malformed bytes included."""
        for _doc, raw in itertools.islice(self.stream(rate), n):
            yield raw

    def stream(self, rate: float = 20.0) -> Iterator[tuple[dict[str, Any] | None, bytes]]:
        """Endless (object or None, bytes) pairs, the clock moving on 1/rate s each."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        step = timedelta(seconds=1 / rate)
        while True:
            if self._live:
                self.clock = max(self.clock, datetime.now(UTC))
            else:
                self.clock += step
            yield self.next_message()

    def report(self) -> dict[str, Any]:
        """One report dict at the current clock (malformed only if so configured)."""
        while True:
            doc, _raw = self.next_message()
            if doc is not None:
                return doc

    def next_message(self) -> tuple[dict[str, Any] | None, bytes]:
        """The next message at the current clock: (the object, or None when the message
        is not a JSON object; its bytes)."""
        rng = self.rng
        if self.malformed_ratio and rng.random() < self.malformed_ratio:
            self.stats.malformed += 1
            return self._malformed()
        if self._recent and rng.random() < self.DUPLICATE_RATIO:
            doc, raw = rng.choice(self._recent)
            self.stats.duplicates += 1
            return copy.deepcopy(doc), raw
        doc = self._new_report()
        raw = json.dumps(doc, ensure_ascii=False).encode()
        self._recent.append((doc, raw))
        if len(self._recent) > 300:
            del self._recent[:100]
        self.stats.reports += 1
        self.last = doc
        return copy.deepcopy(doc), raw

    # -- one report ---------------------------------------------------------------
    def _pick_zone(self) -> tuple[SimZone, bool]:
        rng = self.rng
        burst = self.burst
        if burst is not None and (burst.left <= 0 or self.clock >= burst.ends):
            self.burst = burst = None
        if burst is None and rng.random() < self.BURST_START:
            zone = rng.choices(
                [z for z in ZONES if z.categories is _FIRE_MIX or z.code.startswith("border")]
            )[0]
            size = rng.randint(15, 45)
            burst = Burst(
                zone.code,
                self.clock,
                self.clock + timedelta(minutes=rng.uniform(20, 60)),
                size,
                size,
            )
            self.burst = burst
            self.bursts.append(burst)
            self.stats.bursts += 1
        if burst is not None and rng.random() < 0.75:
            burst.left -= 1
            return ZONE_BY_CODE[burst.zone], True
        return rng.choices(ZONES, weights=self._zone_weights)[0], False

    def _pick_source(self, zone: SimZone) -> Source:
        rng = self.rng
        for _ in range(20):
            source = rng.choices(SOURCES, weights=self._source_weights)[0]
            if source.zones and zone.code not in source.zones:
                continue
            if source.side is not None and source.side not in zone.sides:
                continue
            return source
        return (
            SOURCE_BY_NAME["jmc-aghdam"] if zone.code in _KARABAKH else SOURCE_BY_NAME["media-apa"]
        )

    def _point(self, zone: SimZone) -> tuple[str | None, float, float]:
        rng = self.rng
        if zone.along_road:
            i = rng.randrange(len(CORRIDOR_ROAD) - 1)
            t = rng.random()
            (a_lat, a_lon), (b_lat, b_lon) = CORRIDOR_ROAD[i], CORRIDOR_ROAD[i + 1]
            lat, lon = a_lat + t * (b_lat - a_lat), a_lon + t * (b_lon - a_lon)
            nearest = min(
                (name for name in ("Shusha", "Lachin", "Kornidzor", "Stepanakert")),
                key=lambda p: (PLACES[p][0] - lat) ** 2 + (PLACES[p][1] - lon) ** 2,
            )
            name: str | None = nearest if t < 0.15 or t > 0.85 else None
        else:
            name, lat, lon, _w = rng.choices(zone.sites, weights=[s[3] for s in zone.sites])[0]
        km = zone.jitter_km
        lat += rng.uniform(-km, km) / 111.0
        lon += rng.uniform(-km, km) / (111.0 * math.cos(math.radians(lat)))
        return name, round(lat, 5), round(lon, 5)

    def _new_report(self) -> dict[str, Any]:
        rng = self.rng
        zone, in_burst = self._pick_zone()
        self.stats.by_zone[zone.code] += 1
        source = self._pick_source(zone)
        cats = zone.categories
        if in_burst:  # a flare-up is shooting, and heavier than usual
            cats = {SMALL_ARMS: 50, HEAVY: 20, DRONE: 6, ADVANCE: 3, CIV_HARM: 3, PKF_ATTACK: 1}
        category = rng.choices(list(cats), weights=list(cats.values()))[0]
        if source.source_type == "ngo" and rng.random() < 0.7:
            category = MINE
        elif source.source_type == "sensor" and category not in SENSED:
            category = rng.choice(SENSED)  # acoustic and radar sensors hear fire and blasts

        # times: each kind of source has its own usual lag; a few reports are days late
        lag = timedelta(minutes=rng.expovariate(1 / source.lag_minutes))
        if rng.random() < self.VERY_LATE_RATIO:
            lag = timedelta(hours=rng.uniform(24, 24 * 6))
        if lag > timedelta(hours=3):
            self.stats.late += 1
        occurred = self.clock - lag
        tz = LOCAL_TZ if source.local_time else UTC
        timespec = "milliseconds" if source.source_type == "sensor" else "seconds"
        self._serial[source.name] += 1
        serial = self._serial[source.name]
        doc: dict[str, Any] = {
            "report_id": f"{source.name}-{self.run_tag}-{serial:06d}",
            "source": source.name,
            "source_type": source.source_type,
            "occurred_at": occurred.astimezone(tz).isoformat(timespec=timespec),
        }
        if source.source_type in ("party_statement", "media", "monitoring_centre") or (
            rng.random() < 0.2
        ):
            reported = self.clock - timedelta(seconds=rng.uniform(0, 90))
            doc["reported_at"] = max(reported, occurred).astimezone(tz).isoformat(timespec=timespec)

        place, lat, lon = self._point(zone)
        roll = rng.random()
        if place is not None and roll < 0.18:
            doc["location"] = {"place": place}
        elif place is not None and roll < 0.25:
            doc["location"] = {"lat": lat, "lon": lon, "place": place}
        else:
            doc["location"] = {"lat": lat, "lon": lon}
        doc["category"] = category

        perpetrator, target, civilian = self._attribution(source, zone, category)
        if perpetrator is not None:
            doc["perpetrator"] = perpetrator
        if target is not None:
            doc["target"] = target

        killed_p, wounded_p = CASUALTY_ODDS.get(category, (0.0, 0.0))
        if in_burst:
            killed_p, wounded_p = killed_p * 2, wounded_p * 2
        killed = rng.randint(1, 3) if rng.random() < killed_p else 0
        wounded = rng.randint(1, 5) if rng.random() < wounded_p else 0
        if killed or wounded:
            casualties: dict[str, Any] = {}
            if killed:
                casualties["killed"] = killed
            if wounded:
                casualties["wounded"] = wounded
            if civilian or (category == MINE and rng.random() < 0.6):
                casualties["civilian"] = True
            doc["casualties"] = casualties
        elif rng.random() < 0.03:  # some systems always send the block
            doc["casualties"] = {"killed": 0, "wounded": 0}

        if source.source_type != "sensor" and rng.random() < 0.7:
            doc["description"] = self._describe(source, zone, category, doc, place)
        return doc

    def _attribution(
        self, source: Source, zone: SimZone, category: str
    ) -> tuple[str | None, str | None, bool]:
        """(perpetrator, target, civilians harmed) as this source would state them."""
        rng = self.rng
        a, b = zone.sides
        civilian = category == CIV_HARM
        target: str | None = None
        if category == PKF_ATTACK:
            target = rng.choice(PEACEKEEPERS)
        elif category == CIV_HARM or (category == OBSTRUCTION and rng.random() < 0.5):
            target = "civilians"
        elif category == OBSTRUCTION:
            target = rng.choice(PEACEKEEPERS)

        if source.side is not None:  # a party accuses the other side
            own = source.side
            other = b if own == a else a
            if own == "am" and other == "az":
                accused_names = ACCUSES["am"]["az"]
            elif own == "nk":
                accused_names = ACCUSES["nk"]["az"]
            else:
                accused_names = ACCUSES["az"]["am" if "am" in zone.sides else "nk"]
            if target is None and category not in (MINE, OTHER, WORKS, ADVANCE, AIRSPACE):
                target = rng.choice(SELF_NAMES[own]) if rng.random() < 0.8 else "civilians"
                civilian = civilian or target == "civilians"
            return rng.choice(accused_names), target, civilian

        if source.source_type == "sensor":  # a sensor cannot tell who fired
            return (None if rng.random() < 0.5 else "unknown"), target, civilian
        if category == MINE:  # mines from the war: nobody to blame now
            return (None if rng.random() < 0.6 else "unknown"), target, civilian

        roll = rng.random()
        observed = source.source_type in ("observation_post", "patrol", "sensor")
        if source.source_type == "monitoring_centre":
            unknown_share, blank_share = 0.3, 0.05
        elif observed:
            unknown_share, blank_share = 0.5, 0.2
        else:
            unknown_share, blank_share = 0.25, 0.15
        if roll < blank_share:
            return None, target, civilian
        if roll < blank_share + unknown_share:
            return rng.choice(("unknown", "unknown", "unidentified", "")), target, civilian
        # attributed: either side, the Azerbaijani side named a little more often in
        # Karabakh by the mission, evenly on the border
        side = rng.choices(zone.sides, weights=(1.2, 1.0))[0]
        if source.source_type == "monitoring_centre":
            return side, target, civilian
        return rng.choice(NEUTRAL_NAMES[side]), target, civilian

    def _describe(
        self, source: Source, zone: SimZone, category: str, doc: dict[str, Any], place: str | None
    ) -> str:
        rng = self.rng
        what = rng.choice(WHAT[category])
        near = place or min(
            PLACES,
            key=lambda p: (
                (PLACES[p][0] - doc["location"].get("lat", 0)) ** 2
                + (PLACES[p][1] - doc["location"].get("lon", 0)) ** 2
            ),
        )
        at = datetime.fromisoformat(doc["occurred_at"]).strftime("%H:%M")
        if source.side is not None:
            near = LOCAL_NAMES.get("am" if source.side == "nk" else source.side, {}).get(near, near)
            who = doc.get("perpetrator", "the adversary")
            return (
                f"At {at} {who} subjected our positions in the {near} direction to {what}. "
                "Our units took adequate retaliatory measures."
            )
        if source.source_type in ("observation_post", "patrol", "sensor"):
            return (
                f"{source.name}: {what} observed {rng.uniform(0.5, 6):.1f} km from {near} at {at}."
            )
        if source.source_type == "media":
            return (
                f"Local sources report {what} near {near}; the defence ministry has not commented."
            )
        if source.source_type == "ngo":
            return f"Field team reports {what} near {near}; area marked and cordoned."
        if source.source_type == "civilian":
            return f"Resident called the hotline about {what} near {near}."
        return f"{what.capitalize()} registered near {near} at {at} ({zone.code})."

    # -- malformed input ----------------------------------------------------------
    def _malformed(self) -> tuple[dict[str, Any] | None, bytes]:
        rng = self.rng
        base = self._new_report()
        kind = rng.randrange(13)
        doc: dict[str, Any] | None = copy.deepcopy(base)
        raw: bytes | None = None
        assert doc is not None
        if kind == 0:  # typo in a field name: unknown field (and a missing one)
            doc["occured_at"] = doc.pop("occurred_at")
        elif kind == 1:  # naive time
            doc["occurred_at"] = self.clock.replace(tzinfo=None).isoformat(timespec="seconds")
        elif kind == 2:  # coordinates out of range
            doc["location"] = {"lat": 139.8, "lon": 46.75}
        elif kind == 3:  # not a category code
            doc["category"] = rng.choice(("sniper_fire", "shelling", "Small arms fire"))
        elif kind == 4:
            doc["casualties"] = {"killed": 0, "wounded": -1}
        elif kind == 5:
            doc["report_id"] = ""
        elif kind == 6:  # a day ahead of the clock
            doc["occurred_at"] = (self.clock + timedelta(days=1)).isoformat(timespec="seconds")
        elif kind == 7:
            doc["schema_version"] = 2
        elif kind == 8:
            doc["location"] = {"lat": 39.8}
        elif kind == 9:  # a place the gazetteer does not know (rejected by the worker)
            doc["location"] = {"place": "Atlantis"}
        elif kind == 10:  # truncated JSON
            doc, raw = None, json.dumps(base).encode()[: rng.randint(5, 60)]
        elif kind == 11:  # not UTF-8
            doc, raw = None, json.dumps(base, ensure_ascii=False).encode("utf-16")
        else:  # free text where JSON was expected
            doc, raw = None, b"shots heard near Shusha around midnight"
        if raw is None:
            raw = json.dumps(doc, ensure_ascii=False).encode()
        return doc, raw


def report_key_bytes(doc: Any) -> bytes | None:
    """The message key of a report object: source, unit separator, report_id."""
    if isinstance(doc, dict):
        source, report_id = doc.get("source"), doc.get("report_id")
        if isinstance(source, str) and isinstance(report_id, str):
            return f"{source}\x1f{report_id}".encode()
    return None


# -- the benchmark's reports -------------------------------------------------------
_BENCH_TEMPLATE = (
    '{"report_id":"bench-%08d","source":"%s","source_type":"%s","occurred_at":"%s",'
    '"location":{"lat":%.5f,"lon":%.5f},"category":"%s","perpetrator":"%s",'
    '"casualties":{"killed":%d,"wounded":%d}}'
)
_BENCH_SITES = tuple((lat, lon) for lat, lon in PLACES.values())
_BENCH_PARTIES = ("Armenian Armed Forces", "AZ MoD", "unknown", "nk", "Artsakh Defence Army", "az")


def bench_reports(n: int, seed: int, now: datetime, days: float = 365) -> Iterator[bytes]:
    """n distinct, valid, encoded reports for the benchmark (~250 bytes each).

    `occurred_at` spreads over the `days` (a year) before `now` (a backfill of history, the
    high-volume case): about 50 reports per site per day, the density the linking of
    reports into incidents meets in a real theatre (docs/record.md; 200,000 reports in a
    single day would put hundreds within every 30-minute, 3-km linking window). No
    duplicates: report ids are `bench-<i>`. Fast: plain string formatting, about 200,000
    in a second or two.
    """
    rng = random.Random(seed)
    rand = rng.random
    base = now.astimezone(UTC).replace(microsecond=0)
    epoch = int(base.timestamp())
    sources = [(s.name, s.source_type) for s in SOURCES]
    cats = [c for c, _w in sorted(_FIRE_MIX.items())]
    n_sites, n_src, n_cat = len(_BENCH_SITES), len(sources), len(cats)
    n_party = len(_BENCH_PARTIES)
    fromts = datetime.fromtimestamp
    for i in range(n):
        r = rand()
        ago = int(r * days * 86_400)
        occurred = fromts(epoch - ago, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lat, lon = _BENCH_SITES[i % n_sites]
        source, source_type = sources[(i * 7) % n_src]
        wounded = 1 if i % 50 == 0 else 0
        killed = 1 if i % 211 == 0 else 0
        yield (
            _BENCH_TEMPLATE
            % (
                i,
                source,
                source_type,
                occurred,
                lat + (rand() - 0.5) * 0.02,
                lon + (rand() - 0.5) * 0.02,
                cats[(i * 5 + i // n_cat) % n_cat],
                _BENCH_PARTIES[i % n_party],
                killed,
                wounded,
            )
        ).encode()


# -- live sending ------------------------------------------------------------------
def run_simulation(
    settings: Settings,
    *,
    rate: float,
    duration: float | None,
    seed: int,
    console: Console,
    stop: threading.Event | None = None,
    malformed_ratio: float = 0.0,
) -> int:
    """Send the simulated stream to the input topic in real time, `rate` messages a
    second, until `duration` seconds have passed, `stop` is set or Ctrl-C. Times are
    relative to the real clock. Returns how many messages the broker acknowledged.

    Raises `BrokerUnavailable` (one line) when no broker answers.
    """
    from kafka.errors import KafkaError

    from streams.kafka.topics import BrokerUnavailable, unreachable
    from streams.tools.kafka_io import producer_for

    if rate <= 0:
        raise ValueError("rate must be positive")
    try:
        producer = producer_for(settings)
    except BrokerUnavailable:
        raise
    except KafkaError as exc:
        raise unreachable(settings) from exc

    sim = Simulator(seed, malformed_ratio=malformed_ratio)
    topic = settings.reports_topic
    async_failures: list[BaseException] = []  # the broker refused or timed out
    sync_failures = 0  # the producer refused to queue the message
    sent = 0
    started = time.monotonic()
    # A live line on a terminal when we own the main thread; from a background thread
    # (the demo feed beside a worker) a plain line every ten seconds.
    live_ok = console.is_terminal and threading.current_thread() is threading.main_thread()
    live = Live(console=console, refresh_per_second=4, transient=True) if live_ok else None
    # a plain line every 10 s; every 60 s from a background thread, beside a worker's log
    every = 10.0 if threading.current_thread() is threading.main_thread() else 60.0
    next_plain = started + every
    next_live = started

    def status() -> Text:
        elapsed = max(time.monotonic() - started, 1e-9)
        st = sim.stats
        last = sim.last
        where = ""
        if last is not None:
            loc = last["location"]
            near = loc.get("place") or f"{loc.get('lat')},{loc.get('lon')}"
            where = f"  last: {last['category']} @ {near}"
        burst = f"  [bold red]burst: {sim.burst.zone}[/]" if sim.burst is not None else ""
        failed = len(async_failures) + sync_failures
        fails = f"  [red]failed {failed}[/]" if failed else ""
        text = Text.from_markup(
            f"simulate → {topic}  sent {sent:,} ({sent / elapsed:.1f}/s)  "
            f"dup {st.duplicates}  late {st.late}  malformed {st.malformed}  "
            f"bursts {st.bursts}{burst}{fails}{where}",
            overflow="ellipsis",
        )
        text.no_wrap = True  # one line: what does not fit is cut, the counts come first
        return text

    try:
        if live is not None:
            live.start()
        for doc, raw in sim.stream(rate):
            if stop is not None and stop.is_set():
                break
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            try:
                producer.send(topic, raw, key=report_key_bytes(doc)).add_errback(
                    async_failures.append
                )
            except KafkaError as exc:
                sync_failures += 1
                if sync_failures >= 3 and sent == 0:
                    raise unreachable(settings) from exc
            else:
                sent += 1
            if live is not None:
                if now >= next_live:
                    live.update(status())
                    next_live = now + 0.2
            elif now >= next_plain:
                console.print(status(), no_wrap=True, overflow="ellipsis")
                next_plain = now + every
            ahead = (sent + sync_failures) / rate - (time.monotonic() - started)
            if ahead > 0:
                if stop is not None:
                    stop.wait(ahead)
                else:
                    time.sleep(ahead)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
        try:
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)
    delivered = sent - len(async_failures)
    console.print(status(), no_wrap=True, overflow="ellipsis")
    if async_failures or sync_failures:
        first = async_failures[0] if async_failures else "the producer refused them"
        console.print(
            f"[red]{len(async_failures) + sync_failures} messages were not delivered:[/] {first}"
        )
    return delivered
