"""A realistic, seeded synthetic report stream, event by event, with its ground truth.

What the stream looks like, and why:

* **Events, each reported by one to several sources.** An event (`SimEvent`: zone, time,
  place, category, perpetrator, true casualties) is reported by the sources that would
  see or claim it, each in its own way (`JITTER`, `DAY_SHARE`, `TOWN_SHARE`): two
  observation posts hearing one shelling, a sensor, a patrol, the monitoring centre
  (accurate figures; times within minutes, places within a few hundred metres); each
  side's ministry (`party_statement`, `claimant` set) accusing the other, whoever fired,
  with exaggerated figures; media, callers and NGOs retelling, sometimes only the day
  (`time_precision: day`) or the town (`location.precision: town`); an ACLED-style
  dataset import days later (a day, the killed only, `revision` its timestamp). Every
  report of an event lies in the event's zone of the shipped catalogue.
* **Zones with their own tempo.** The line-of-contact sectors (north, east, south)
  carry most of the fire; the Lachin corridor mostly sees obstruction of movement,
  detentions and the odd shot; the returned districts (Aghdam, Kalbajar, Lachin) mostly
  mine and UXO incidents; the Armenia-Azerbaijan border sectors (Syunik, Gegharkunik,
  Tavush) fire, engineering works and positional advances. Events lie a few km around
  the areas' sites (corridor events along the road itself).
* **Sources that behave like their real counterparts.** Russian peacekeeping
  observation posts report in their own sector, quickly, and often cannot attribute
  fire (`unknown`). Party statements arrive hours later, in local time (+04:00), and
  accuse the other side in their own words ("Armenian Armed Forces", "AZ MoD",
  "Artsakh Defence Army", and now and then a phrase no alias list knows). The joint
  monitoring centre near Aghdam attributes with party codes; demining NGOs report mines;
  each side's news agency blames the other side.
* **Places and targets named** (`PLACE_SHARE`, `TARGET_SHARE`): most reports name the
  event's nearest gazetteer place, some the next one; reports that are not a party's
  statement name whom the fire hit (the event's target, sometimes the wrong side), a
  party's statement and its side's news agency their own side whoever was hit. Drawn
  from a generator of their own: the rest of the stream is as it was without them.
* **Times of day in day texts** (`TIME_SAID`): a third of the day-precision texts of the
  dataset, media and callers give a clock time, a third the part of the day, as a sample
  of ministry statements and agency articles did. From each report's own generator: the
  rest of the stream is as it was without them.
* **Casualties are rare**: someone killed in about 2 % of reports, wounded in about 5 %.
* **Bursts**: now and then a zone flares up: a handful of distinct events in it within
  the hour, with more heavy fire and more casualties (separate events the linking of
  reports into incidents must not merge).
* **Late reports**: about 4 % occurred days before they are sent (on top of the usual
  minutes-to-hours lag of each kind of source).
* **Corrections**: about 3 % of reports are re-sent verbatim; some are revised (a higher
  `revision`: corrected figures, a corrected time), some revisions followed by a stale
  copy of the first version; a few are withdrawn (`withdrawn: true`).
* **Malformed input** only when asked for (`malformed_ratio > 0`): typos in field
  names, naive times, swapped coordinates, unknown categories, an unknown place,
  truncated JSON, non-UTF-8 bytes...

`Simulator.stream` is the message stream (`ceasefire-monitor simulate`);
`Simulator.events` the same model on an event timeline, each message with the id of the
event it is about (`Simulator.truth`), for measuring linking quality. Everything is drawn
from `random.Random(seed)` and a simulated clock: with a `start`, the same seed gives the
same stream, byte for byte, whatever the wall clock says. Without one the clock is the
real clock (live use): every `occurred_at` and `reported_at` then lies at or before the
real now.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, BinaryIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from streams.classify.gazetteer import Gazetteer
from streams.classify.zones import OUTSIDE, ZoneCatalogue
from streams.config import Settings
from streams.tools.sim_world import (
    ACCUSES,
    ACLED_ACTORS,
    ADVANCE,
    AIRSPACE,
    CASUALTY_ODDS,
    CIV_HARM,
    CLAIMANTS,
    CODED,
    CORRIDOR_ROAD,
    DAY_SHARE,
    DETENTION,
    DRONE,
    FIRE,
    FIRE_MIX,
    FOLLOW_UPS,
    HEAVY,
    JITTER,
    KARABAKH,
    LOCAL_NAMES,
    LOCAL_TZ,
    MEDIA_SIDE,
    MINE,
    MISSION,
    NAMED_KM,
    NEIGHBOUR_SHARE,
    NEUTRAL_NAMES,
    NOTICED,
    OBSTRUCTION,
    OTHER,
    PEACEKEEPERS,
    PKF_ATTACK,
    PLACE_SHARE,
    PLACES,
    PROPERTY,
    SELF_NAMES,
    SENSED,
    SMALL_ARMS,
    SOURCE_BY_NAME,
    SOURCES,
    TARGET_ERROR,
    TARGET_SHARE,
    TIME_SAID,
    TOWN_KM,
    TOWN_SHARE,
    WHAT,
    WORKS,
    ZONE_BY_CODE,
    ZONES,
    SimZone,
    Source,
)

#: Messages per minute of an event's timeline in `stream` mode: a report due 8 minutes
#: after the first of its event comes 2 messages later (see `Simulator.stream`).
STREAM_MESSAGES_PER_MINUTE = 0.25


@dataclass(frozen=True, slots=True)
class SimEvent:
    """What happened: the ground truth the reports of one event describe.

    `zone` is the monitor's zone (the shipped catalogue's) of the event's point, and every
    report of the event is placed in it; `area` is the simulator's own area (tempo,
    sources). `perpetrator` is a party code, or `unknown`; the casualties are the true ones.
    """

    event_id: str
    area: str
    zone: str
    occurred: datetime
    lat: float
    lon: float
    town: str | None
    category: str
    perpetrator: str
    killed: int
    wounded: int
    civilian: bool
    burst: bool = False


@dataclass
class _Plan:
    """One source's report of an event: what it says, revision by revision."""

    event: SimEvent
    source: Source
    report_id: str
    occurred: datetime  # as stated (UTC)
    day: bool
    location: dict[str, Any]
    category: str
    perpetrator: str | None
    target: str | None
    claimant: str | None
    killed: int
    wounded: int
    civilian: bool
    described: bool
    #: the first figures were partial: a later revision gives the true ones
    partial: bool = False
    revision: int = 0
    first: bytes = b""
    last: tuple[dict[str, Any], bytes] | None = None


@dataclass
class _Due:
    """A pending step: a report's versions, copies and withdrawal; an event to start."""

    kind: str  # "send", "revise", "stale", "resend", "withdraw", "event"
    plan: _Plan | None = None
    event: SimEvent | None = None


@dataclass
class Burst:
    """A zone flaring up: a few distinct events in it within the hour (in `stream` mode also
    most new events, until the count runs out)."""

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
    events: int = 0
    revisions: int = 0
    stale: int = 0
    withdrawals: int = 0
    by_zone: Counter[str] = field(default_factory=Counter)


@cache
def _shipped_map() -> tuple[ZoneCatalogue, tuple[tuple[str, float, float, str], ...]]:
    """The shipped zone catalogue, and each gazetteer place with its point and zone."""
    zones = ZoneCatalogue.load()
    towns = tuple(
        (p.name, p.lat, p.lon, zones.locate(p.lat, p.lon)) for p in Gazetteer.load().places
    )
    return zones, towns


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


class Simulator:
    """A seeded synthetic stream of incident reports, event by event.

    Each simulated event (`SimEvent`: zone, time, place, category, perpetrator, true
    casualties) is reported by one to several sources, each as its kind does: posts,
    patrols and sensors accurately and soon; each side's ministry accusing the other, with
    exaggerated figures, hours later; media and NGOs retelling, sometimes only the day or
    the town; a dataset import days later. Reports are re-sent verbatim, revised (corrected
    figures at a higher `revision`), copied stale (an older revision after a newer one) and
    withdrawn. Zones flare up: a burst of distinct events in one zone within the hour.

    Two ways to read it:

    * `stream(rate)` (and `reports`, `messages`, `next_message`): one message per tick of a
      clock moving 1/`rate` s a message; with `start`, simulated and deterministic, without
      it the real clock. An event's timeline is compressed into messages
      (`STREAM_MESSAGES_PER_MINUTE`) so that its reports come close together whatever the
      rate: this is the load and demo generator (`ceasefire-monitor simulate`).
    * `events(n, per_day=...)`: the messages about `n` events occurring at `per_day`, on a
      simulated timeline where the clock is each message's arrival, yielded with the id of
      the event each is about; `truth` maps the ids to the events. This is what linking
      quality is measured on (`streams/tools/linking_quality.py`).

    `malformed_ratio`: share of deliberately malformed messages in `stream` (default none).
    `zones`, `towns`: the zone catalogue events are placed in (the shipped one by default:
    every report of an event lies in the event's zone of it), and the gazetteer whose places
    reports may name.
    """

    DUPLICATE_RATIO = 0.03
    VERY_LATE_RATIO = 0.04
    BURST_START = 0.0075  # chance per new event that a zone flares up (when none does)
    STALE_RATIO = 0.25  # share of revisions followed by a stale copy of the first version

    def __init__(
        self,
        seed: int = 2020,
        start: datetime | None = None,
        *,
        malformed_ratio: float = 0.0,
        zones: ZoneCatalogue | None = None,
        gazetteer: Gazetteer | None = None,
    ) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0.0 <= malformed_ratio < 1.0:
            raise ValueError("malformed_ratio must be in [0, 1)")
        self.rng = random.Random(seed)
        # The named places and targets draw from their own generator, so everything else
        # (events, sources, times, points, figures) is what it was without them.
        self._said = random.Random(f"said-{seed}")
        self._live = start is None
        self.clock: datetime = start if start is not None else datetime.now(UTC)
        self.malformed_ratio = malformed_ratio
        shipped_zones, shipped_towns = _shipped_map()
        self.zones = zones or shipped_zones
        self._towns = (
            shipped_towns
            if zones is None and gazetteer is None
            else tuple(
                (p.name, p.lat, p.lon, self.zones.locate(p.lat, p.lon))
                for p in (gazetteer or Gazetteer.load()).places
            )
        )
        # Report ids carry a run tag, so a second run (another start, or a later live
        # run with the same seed) is not silently de-duplicated against the first.
        self.run_tag = f"{seed}-{int(self.clock.timestamp()):x}"
        self._serial: Counter[str] = Counter()
        self._events = 0
        self.burst: Burst | None = None
        self.bursts: list[Burst] = []
        self.stats = SimStats()
        self.last: dict[str, Any] | None = None
        #: event id -> the event, for the events `events()` started
        self.truth: dict[str, SimEvent] = {}
        self._zone_weights = [z.rate for z in ZONES]
        self._source_weights = [s.weight for s in SOURCES]
        #: pending steps: (due, sequence, step); due is a message count in `stream` mode,
        #: a unix time in `events` mode
        self._pending: list[tuple[float, int, _Due]] = []
        self._seq = 0
        self._tick = 0
        self._mode: str | None = None
        self._unit = STREAM_MESSAGES_PER_MINUTE

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
        is not a JSON object; its bytes). `stream` mode: one message a tick; a new event
        starts whenever no report of an earlier one is due."""
        self._enter("stream")
        rng = self.rng
        self._tick += 1
        if self.malformed_ratio and rng.random() < self.malformed_ratio:
            self.stats.malformed += 1
            return self._malformed()
        while True:
            if not self._pending or self._pending[0][0] > self._tick:
                self._start_stream_event()
            _due, _seq, step = heapq.heappop(self._pending)
            message = self._perform(step)
            if message is not None:
                doc, raw = message
                return copy.deepcopy(doc), raw

    def events(
        self, n: int | None = None, *, per_day: float = 60.0
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event id, report object) for every message about `n` events (forever when None)
        that occur at `per_day` on average (bursts add a few), in order of arrival: the
        reports, re-sends, revisions, stale copies and withdrawals of each, until the last
        has arrived. `self.clock` is the arrival of the message just yielded (each message
        is valid at it); `self.truth[event_id]` is the event. Needs a simulated clock."""
        if self._live:
            raise ValueError("events() needs a simulated clock: give Simulator a start")
        if per_day <= 0:
            raise ValueError("per_day must be positive")
        self._enter("events")
        rng = self.rng
        mean_gap = 86_400.0 / per_day
        next_at = self.clock.timestamp() + rng.expovariate(1 / mean_gap)
        while True:
            due = self._pending[0][0] if self._pending else math.inf
            if (n is None or self._events < n) and next_at <= due:
                self.clock = max(self.clock, datetime.fromtimestamp(next_at, UTC))
                self._start_timed_events(n)
                next_at += rng.expovariate(1 / mean_gap)
                continue
            if not self._pending:
                return
            due, _seq, step = heapq.heappop(self._pending)
            self.clock = max(self.clock, datetime.fromtimestamp(due, UTC))
            message = self._perform(step)
            if message is not None:
                doc, _raw = message
                assert step.plan is not None
                yield step.plan.event.event_id, copy.deepcopy(doc)

    def _enter(self, mode: str) -> None:
        if self._mode is None:
            self._mode = mode
            self._unit = 60.0 if mode == "events" else STREAM_MESSAGES_PER_MINUTE
        elif self._mode != mode:
            raise ValueError(f"this simulator runs in {self._mode} mode; make another")

    def _push(self, due: float, step: _Due) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (due, self._seq, step))

    def _now(self) -> float:
        """Now on the pending queue's scale."""
        return float(self._tick) if self._mode == "stream" else self.clock.timestamp()

    # -- starting events ------------------------------------------------------------
    def _start_stream_event(self) -> None:
        """`stream` mode: a new event (in the burst zone, while one flares up) whose first
        report is due now. It occurred its first report's lag before the latest exact time its
        sources state, and that before the clock (days before, for about VERY_LATE_RATIO of
        them); its other reports follow, their lags compressed into messages
        (STREAM_MESSAGES_PER_MINUTE)."""
        rng = self.rng
        area, in_burst = self._pick_area()
        event = self._new_event(area, in_burst, None)
        plans = self._plans(event)
        first = min(lag for lag, _p in plans)
        # the first report comes `first` after the latest exact time a source states: a
        # time after the clock was cut to the clock, and a fresh event's reports all stated
        # that one second (the demo's incidents)
        ahead = max(
            ((p.occurred - event.occurred).total_seconds() / 60 for _l, p in plans if not p.day),
            default=0.0,
        )
        lead = first + max(ahead, 0.0)
        if rng.random() < self.VERY_LATE_RATIO:
            lead = rng.uniform(24 * 60, 24 * 60 * 6)
        moved = replace(event, occurred=self.clock - timedelta(minutes=lead))
        shift = moved.occurred - event.occurred
        for lag, plan in plans:
            plan.event = moved
            stated = (
                _day_time(moved.occurred, plan.source.source_type)
                if plan.day
                else plan.occurred + shift
            )
            plan.occurred = min(stated, self.clock)
            self._push(self._tick + (lag - first) * self._unit, _Due("send", plan))

    def _start_timed_events(self, n: int | None) -> None:
        """`events` mode: an event now, its reports due at their lags; now and then a
        flare-up: a few more distinct events in the same zone within the next hour."""
        rng = self.rng
        area, burst = self._pick_area(timed=True)
        self._schedule(self._plans(self._new_event(area, burst, self.clock)))
        if burst:
            flare = self.bursts[-1]
            span = (flare.ends - flare.started).total_seconds()
            for _ in range(flare.size - 1):
                if n is not None and self._events >= n:
                    break
                at = self.clock + timedelta(seconds=rng.uniform(0, span))
                self._push(at.timestamp(), _Due("event", event=self._new_event(area, True, at)))
            self.burst = None

    def _schedule(self, plans: list[tuple[float, _Plan]]) -> None:
        """`events` mode: each report due its lag after the event, never before the time it
        states."""
        for lag, plan in plans:
            due = max(
                plan.event.occurred.timestamp() + lag * 60.0, plan.occurred.timestamp() + 30.0
            )
            self._push(due, _Due("send", plan))

    def _pick_area(self, *, timed: bool = False) -> tuple[SimZone, bool]:
        rng = self.rng
        burst = self.burst
        if burst is not None and (burst.left <= 0 or self.clock >= burst.ends):
            self.burst = burst = None
        if burst is None and rng.random() < self.BURST_START:
            zone = rng.choices(
                [z for z in ZONES if z.categories is FIRE_MIX or z.code.startswith("border")]
            )[0]
            size = rng.randint(4, 12) if timed else rng.randint(6, 18)
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
            if timed:
                return zone, True
        if burst is not None and rng.random() < 0.75:
            burst.left -= 1
            return ZONE_BY_CODE[burst.zone], True
        return rng.choices(ZONES, weights=self._zone_weights)[0], False

    # -- one event --------------------------------------------------------------------
    def _new_event(self, area: SimZone, in_burst: bool, at: datetime | None) -> SimEvent:
        """An event in `area` at `at` (now, in `stream` mode: placed in time later)."""
        rng = self.rng
        cats = area.categories
        if in_burst:  # a flare-up is shooting, and heavier than usual
            cats = {SMALL_ARMS: 50, HEAVY: 20, DRONE: 6, ADVANCE: 3, CIV_HARM: 3, PKF_ATTACK: 1}
        category = rng.choices(list(cats), weights=list(cats.values()))[0]
        for _ in range(10):  # events happen in the monitored zones
            _name, lat, lon = self._point(area)
            zone = self.zones.locate(lat, lon)
            if zone != OUTSIDE:
                break
        towns = [
            (d, name)
            for name, t_lat, t_lon, t_zone in self._towns
            if t_zone == zone and (d := _km(lat, lon, t_lat, t_lon)) <= TOWN_KM
        ]
        town = min(towns)[1] if towns else None
        a, b = area.sides
        if category == MINE:
            perpetrator = "unknown" if rng.random() < 0.85 else rng.choice(area.sides)
        elif category in (OTHER, AIRSPACE) and rng.random() < 0.4:
            perpetrator = "unknown"
        else:
            perpetrator = rng.choices((a, b), weights=(1.2, 1.0))[0]
        killed_p, wounded_p = CASUALTY_ODDS.get(category, (0.0, 0.0))
        if in_burst:
            killed_p, wounded_p = killed_p * 2, wounded_p * 2
        killed = rng.randint(1, 3) if rng.random() < killed_p else 0
        wounded = rng.randint(1, 5) if rng.random() < wounded_p else 0
        civilian = category == CIV_HARM or (
            category == MINE and bool(killed or wounded) and rng.random() < 0.6
        )
        self._events += 1
        self.stats.events += 1
        event = SimEvent(
            event_id=f"ev-{self.run_tag}-{self._events:06d}",
            area=area.code,
            zone=zone,
            occurred=(at or self.clock).astimezone(UTC),
            lat=lat,
            lon=lon,
            town=town,
            category=category,
            perpetrator=perpetrator,
            killed=killed,
            wounded=wounded,
            civilian=civilian,
            burst=in_burst,
        )
        if self._mode == "events":
            self.truth[event.event_id] = event
        return event

    def _plans(self, event: SimEvent) -> list[tuple[float, _Plan]]:
        """(lag in minutes, plan) of each source that reports `event`: one at least."""
        rng = self.rng
        area = ZONE_BY_CODE[event.area]
        chosen = [s for s in SOURCES if (p := self._odds(s, area, event)) and rng.random() < p]
        if not chosen:
            chosen = [self._pick_source(area, event)]
        out = []
        for source in chosen:
            lag = rng.expovariate(1 / source.lag_minutes)
            if self._mode == "events" and rng.random() < self.VERY_LATE_RATIO:
                lag = rng.uniform(24 * 60, 24 * 60 * 6)
            out.append((lag, self._plan(event, source)))
        return out

    def _odds(self, source: Source, area: SimZone, event: SimEvent) -> float:
        """The chance that `source` reports `event`."""
        if source.zones and area.code not in source.zones:
            return 0.0
        if source.side is not None and source.side not in area.sides:
            return 0.0
        cat = event.category
        harmed = 0.3 if event.killed or event.wounded else 0.0
        kind = source.source_type
        if kind == "observation_post":
            return 0.55 if cat in NOTICED else 0.3
        if kind == "patrol":
            return 0.2
        if kind == "sensor":
            return 0.5 if cat in SENSED else 0.0
        if kind == "monitoring_centre":
            return 0.2 + harmed
        if kind == "party_statement":  # the side hit accuses; the other often does too
            odds = 0.45 if source.side != event.perpetrator else 0.25
            return min(0.95, (odds if cat in FIRE else odds / 2) + harmed)
        if kind == "media":
            return 0.06 + harmed
        if kind == "civilian":
            return 0.25 if cat in (CIV_HARM, PROPERTY, MINE, OBSTRUCTION, DETENTION) else 0.03
        if kind == "ngo":
            return 0.6 if cat == MINE else 0.02
        if kind == "dataset":
            return (0.12 if cat in CODED else 0.03) + harmed
        return 0.05

    def _pick_source(self, area: SimZone, event: SimEvent) -> Source:
        rng = self.rng
        for _ in range(20):
            source = rng.choices(SOURCES, weights=self._source_weights)[0]
            if self._odds(source, area, event) > 0:
                return source
        return (
            SOURCE_BY_NAME["jmc-aghdam"] if area.code in KARABAKH else SOURCE_BY_NAME["media-apa"]
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

    # -- one report -----------------------------------------------------------------
    def _plan(self, event: SimEvent, source: Source) -> _Plan:
        """What `source` says about `event` in its first version."""
        rng = self.rng
        kind = source.source_type
        t_sigma, km_sigma = JITTER[kind]
        day = rng.random() < DAY_SHARE.get(kind, 0.0)
        if day:
            occurred = _day_time(event.occurred, kind)
        else:
            err = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * t_sigma
            occurred = event.occurred + timedelta(minutes=err)
            if kind == "party_statement":
                occurred = _round_minutes(occurred, 5)
        location = self._report_location(event, kind, km_sigma)
        category = event.category
        if kind in ("party_statement", "media") and category == SMALL_ARMS and rng.random() < 0.2:
            category = HEAVY  # "mortar fire" where the post heard bursts: one fire family
        perpetrator, target, civilian = self._attribution(source, event, category)
        if source.side is None:
            target = self._stated_target(source, event, target)
        location = self._named_place(event, kind, location)
        killed, wounded, partial = self._figures(source, event)
        claimant = rng.choice(CLAIMANTS[source.side]) if source.side is not None else None
        self._serial[source.name] += 1
        return _Plan(
            event=event,
            source=source,
            report_id=f"{source.name}-{self.run_tag}-{self._serial[source.name]:06d}",
            occurred=occurred,
            day=day,
            location=location,
            category=category,
            perpetrator=perpetrator,
            target=target,
            claimant=claimant,
            killed=killed,
            wounded=wounded,
            civilian=civilian or event.civilian,
            described=kind != "sensor" and rng.random() < 0.7,
            partial=partial,
        )

    def _report_location(self, event: SimEvent, kind: str, km_sigma: float) -> dict[str, Any]:
        """The nearest town (when one is near and the source gives towns), else the event's
        point as the source places it: in the event's zone, always."""
        rng = self.rng
        if event.town is not None and rng.random() < TOWN_SHARE.get(kind, 0.0):
            _name, t_lat, t_lon, _zone = next(t for t in self._towns if t[0] == event.town)
            if kind == "dataset" or rng.random() < 0.3:  # ACLED geo_precision 2
                return {"lat": t_lat, "lon": t_lon, "precision": "town"}
            return {"place": event.town}
        lat, lon = event.lat, event.lon
        for _ in range(10):
            dy = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * km_sigma
            dx = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * km_sigma
            p_lat = round(event.lat + dy / 111.2, 5)
            p_lon = round(event.lon + dx / (111.2 * math.cos(math.radians(event.lat))), 5)
            if self.zones.locate(p_lat, p_lon) == event.zone:
                lat, lon = p_lat, p_lon
                break
        location: dict[str, Any] = {"lat": lat, "lon": lon}
        if kind == "dataset":
            location["precision"] = "point"
        elif event.town is not None and rng.random() < 0.1:
            location["place"] = event.town  # "near <town>": the point wins
        return location

    def _event_target(self, event: SimEvent) -> str | None:
        """Whom the event hit, as a name any source would use (not part of the truth the
        reports are scored against): the side facing the one who fired, a village now and
        then, the peacekeepers, civilians; None when it hit no one (works, overflights).
        Drawn from the event's id, so every report of the event agrees without state."""
        rng = random.Random(f"target-{event.event_id}")
        a, b = ZONE_BY_CODE[event.area].sides
        category = event.category
        if category == PKF_ATTACK:
            return PEACEKEEPERS[0]
        if category in (CIV_HARM, PROPERTY, DETENTION) or event.civilian:
            return "civilians"
        if category == OBSTRUCTION:
            return "civilians" if rng.random() < 0.5 else PEACEKEEPERS[0]
        if category not in FIRE:
            return None
        if rng.random() < 0.1:
            return "civilians"  # a village shelled
        fired = event.perpetrator if event.perpetrator in (a, b) else rng.choice((a, b))
        return NEUTRAL_NAMES[b if fired == a else a][0]

    def _stated_target(self, source: Source, event: SimEvent, drawn: str | None) -> str | None:
        """The target a report that is not a party's statement names: the event's (with
        `TARGET_ERROR`), a news agency its own side, or none. `drawn` is what
        `_attribution` drew (kept when this source names no target)."""
        rng = self._said
        kind = source.source_type
        truth = self._event_target(event)
        if truth is None or kind == "sensor" or rng.random() >= TARGET_SHARE.get(kind, 0.0):
            return drawn if kind != "sensor" else None
        sides = ZONE_BY_CODE[event.area].sides
        if source.name in MEDIA_SIDE and truth not in ("civilians", PEACEKEEPERS[0]):
            own = MEDIA_SIDE[source.name]
            own = own if own in sides else next(s for s in sides if s != "az")
            return NEUTRAL_NAMES[own][1]  # the agency's side was hit, whoever was
        if truth in ("civilians", PEACEKEEPERS[0]) or rng.random() >= TARGET_ERROR:
            named = truth
        else:
            hit = next(s for s in sides if NEUTRAL_NAMES[s][0] == truth)
            named = NEUTRAL_NAMES[sides[0] if hit == sides[1] else sides[1]][0]
        if kind == "dataset":
            code = next((s for s in sides if NEUTRAL_NAMES[s][0] == named), None)
            if code is not None:
                return ACLED_ACTORS[code]
            if named == "civilians":
                return "Civilians (Azerbaijan)" if sides[0] == "az" else "Civilians (Armenia)"
        return named

    def _named_place(self, event: SimEvent, kind: str, location: dict[str, Any]) -> dict[str, Any]:
        """`location` with a named place added to a point (`PLACE_SHARE`): the nearest
        gazetteer place within NAMED_KM of the event, or the next nearest. A place-only
        report, or one already naming its town, keeps what it has; so does a town's point
        (`precision: town`, `_report_location`): it names the event's town by where it
        lies, and a name beside it could be another place's (the nearest to the event or
        the next), a report placed at one town naming a second."""
        if "place" in location or "lat" not in location:
            return location
        rng = self._said
        if rng.random() >= PLACE_SHARE.get(kind, 0.0):
            return location
        near = sorted(
            (d, name)
            for name, t_lat, t_lon, _zone in self._towns
            if (d := _km(event.lat, event.lon, t_lat, t_lon)) <= NAMED_KM
        )
        if not near:
            return location
        pick = 1 if len(near) > 1 and rng.random() < NEIGHBOUR_SHARE else 0
        if location.get("precision") == "town":
            # decided after the draws, which are as for a point: the rest of the stream
            # (places and targets named, times said) is as it was without the town
            return location
        return {**location, "place": near[pick][1]}

    def _attribution(
        self, source: Source, event: SimEvent, category: str
    ) -> tuple[str | None, str | None, bool]:
        """(perpetrator, target, civilians harmed) as this source would state them."""
        rng = self.rng
        area = ZONE_BY_CODE[event.area]
        a, b = area.sides
        civilian = category == CIV_HARM
        target: str | None = None
        if category == PKF_ATTACK:
            target = rng.choice(PEACEKEEPERS)
        elif category == CIV_HARM or (category == OBSTRUCTION and rng.random() < 0.5):
            target = "civilians"
        elif category == OBSTRUCTION:
            target = rng.choice(PEACEKEEPERS)
        kind = source.source_type

        if source.side is not None:  # a party accuses the other side, whoever fired
            own = source.side
            if own == "am":
                accused_names = ACCUSES["am"]["az"]
            elif own == "nk":
                accused_names = ACCUSES["nk"]["az"]
            else:
                accused_names = ACCUSES["az"]["am" if "am" in area.sides else "nk"]
            if target is None and category not in (MINE, OTHER, WORKS, ADVANCE, AIRSPACE):
                target = rng.choice(SELF_NAMES[own]) if rng.random() < 0.8 else "civilians"
                civilian = civilian or target == "civilians"
            return rng.choice(accused_names), target, civilian

        if kind == "dataset":
            if civilian:
                target = "Civilians (Azerbaijan)" if a == "az" else "Civilians (Armenia)"
            return ACLED_ACTORS[event.perpetrator], target, civilian
        if kind == "sensor":  # a sensor cannot tell who fired
            return (None if rng.random() < 0.5 else "unknown"), target, civilian
        if category == MINE and event.perpetrator == "unknown":  # mines from the war
            return (None if rng.random() < 0.6 else "unknown"), target, civilian

        roll = rng.random()
        observed = kind in ("observation_post", "patrol")
        if kind == "monitoring_centre":
            unknown_share, blank_share = 0.3, 0.05
        elif observed:
            unknown_share, blank_share = 0.5, 0.2
        else:
            unknown_share, blank_share = 0.25, 0.15
        if roll < blank_share:
            return None, target, civilian
        if roll < blank_share + unknown_share or event.perpetrator == "unknown":
            return rng.choice(("unknown", "unknown", "unidentified", "")), target, civilian
        side = event.perpetrator
        if source.name in MEDIA_SIDE:  # a side's news agency names the other side
            side = "az" if MEDIA_SIDE[source.name] != "az" else (b if a == "az" else a)
        if kind == "monitoring_centre":
            return side, target, civilian
        return rng.choice(NEUTRAL_NAMES[side]), target, civilian

    def _figures(self, source: Source, event: SimEvent) -> tuple[int, int, bool]:
        """(killed, wounded, partial) in the source's first version. The mission's own
        sources give the true figures, or partial ones they correct later; a party's
        statement exaggerates what the other side did to it; media and callers half the
        time repeat that; a sensor counts nobody; a dataset gives only the killed."""
        rng = self.rng
        killed, wounded = event.killed, event.wounded
        kind = source.source_type
        if kind == "sensor":
            return 0, 0, False
        if kind == "dataset":
            return killed, 0, False
        if kind in MISSION:
            if (killed or wounded) and rng.random() < 0.25:
                return rng.randint(0, killed), rng.randint(0, wounded), True
            return killed, wounded, False
        if kind == "party_statement" or rng.random() < 0.5:
            if killed or wounded:
                return (
                    killed + rng.randint(0, killed + 1),
                    wounded + rng.randint(0, wounded + 2),
                    False,
                )
            if kind == "party_statement" and rng.random() < 0.03:
                return 0, rng.randint(1, 3), False  # wounded no one else saw
        return killed, wounded, False

    # -- sending --------------------------------------------------------------------
    def _perform(self, step: _Due) -> tuple[dict[str, Any], bytes] | None:
        """Carry out a pending step: the message it sends, or None (an event started)."""
        if step.kind == "event":
            assert step.event is not None
            self._schedule(self._plans(step.event))
            return None
        plan = step.plan
        assert plan is not None
        if step.kind == "send":
            doc = self._document(plan)
            raw = json.dumps(doc, ensure_ascii=False).encode()
            plan.first = raw
            plan.last = (doc, raw)
            self._follow_ups(plan)
            self.stats.reports += 1
            self.stats.by_zone[plan.event.area] += 1
            if datetime.fromisoformat(doc["occurred_at"]) < self.clock - timedelta(hours=3):
                self.stats.late += 1
            self.last = doc
            return doc, raw
        if step.kind == "revise":
            self._revise(plan)
            doc = self._document(plan)
            raw = json.dumps(doc, ensure_ascii=False).encode()
            plan.last = (doc, raw)
            self.stats.revisions += 1
            if self.rng.random() < self.STALE_RATIO:
                self._push(self._now() + self._later(60), _Due("stale", plan))
            self._maybe_resend(plan)
            return doc, raw
        if step.kind == "stale":
            self.stats.stale += 1
            return json.loads(plan.first), plan.first
        if step.kind == "resend":
            assert plan.last is not None
            self.stats.duplicates += 1
            return plan.last
        if step.kind == "withdraw":
            plan.revision = self._next_revision(plan)
            doc = {
                "report_id": plan.report_id,
                "source": plan.source.name,
                "revision": plan.revision,
                "withdrawn": True,
            }
            self.stats.withdrawals += 1
            return doc, json.dumps(doc, ensure_ascii=False).encode()
        raise ValueError(f"unknown step {step.kind!r}")

    def _later(self, mean_minutes: float) -> float:
        """A delay on the pending queue's scale, exponential with this mean."""
        return self.rng.expovariate(1 / mean_minutes) * self._unit

    def _follow_ups(self, plan: _Plan) -> None:
        """Schedule what comes after a report's first version: a revision, a withdrawal
        (after the revision), a verbatim re-send."""
        rng = self.rng
        revise_p, withdraw_p = FOLLOW_UPS[plan.source.source_type]
        if plan.partial:
            revise_p = 0.7
        now = self._now()
        at = now
        if rng.random() < revise_p:
            at += self._later(360 if plan.source.source_type != "dataset" else 7 * 1440)
            self._push(at, _Due("revise", plan))
        if rng.random() < withdraw_p:
            self._push(at + self._later(240), _Due("withdraw", plan))
        self._maybe_resend(plan)

    def _maybe_resend(self, plan: _Plan) -> None:
        if self.rng.random() < self.DUPLICATE_RATIO:
            self._push(self._now() + self._later(30), _Due("resend", plan))

    def _revise(self, plan: _Plan) -> None:
        """A correction: the true figures where the first were partial; else, outside the
        mission (whose figures are accurate), figures revised upwards where there were some
        (a death confirmed, more wounded: the first figure is often the lowest); else the
        time: for a report that gave only the day,
        sometimes the time, and for one that gave a time, a nearer one."""
        rng = self.rng
        ev = plan.event
        plan.revision = self._next_revision(plan)
        if plan.partial:
            plan.killed, plan.wounded, plan.partial = ev.killed, ev.wounded, False
            return
        kind = plan.source.source_type
        if kind == "dataset":  # a re-export: the fatalities as now known
            plan.killed = ev.killed + (1 if ev.killed and rng.random() < 0.3 else 0)
            return
        if (plan.killed or plan.wounded) and kind not in MISSION:
            if plan.killed and rng.random() < 0.3:
                plan.killed += 1
            else:
                plan.wounded += rng.randint(1, 3)
            return
        if plan.day and (kind == "ngo" or rng.random() < 0.7):
            return  # a correction of what the figures do not show (the description)
        t_sigma = JITTER[kind][0]
        err = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * t_sigma
        if not plan.day:
            err = (plan.occurred - ev.occurred).total_seconds() / 120 + err / 2
        plan.occurred = min(ev.occurred + timedelta(minutes=err), self.clock)
        plan.day = False

    def _next_revision(self, plan: _Plan) -> int:
        if plan.source.source_type == "dataset":  # ACLED's `timestamp`
            return max(plan.revision + 1, int(self.clock.timestamp()))
        return plan.revision + 1

    def _document(self, plan: _Plan) -> dict[str, Any]:
        """The report object of the plan's current version, sent now."""
        rng = self.rng
        source = plan.source
        tz = LOCAL_TZ if source.local_time else UTC
        timespec = "milliseconds" if source.source_type == "sensor" else "seconds"
        occurred = plan.occurred
        doc: dict[str, Any] = {
            "report_id": plan.report_id,
            "source": source.name,
            "source_type": source.source_type,
            "occurred_at": occurred.astimezone(tz).isoformat(timespec=timespec),
        }
        if source.source_type == "dataset" and plan.revision == 0:
            plan.revision = int(self.clock.timestamp())
        if source.source_type in ("party_statement", "media", "monitoring_centre", "dataset") or (
            rng.random() < 0.2
        ):
            reported = self.clock - timedelta(seconds=rng.uniform(0, 90))
            doc["reported_at"] = max(reported, occurred).astimezone(tz).isoformat(timespec=timespec)
        if plan.revision:
            doc["revision"] = plan.revision
        if plan.day:
            doc["time_precision"] = "day"
        doc["location"] = dict(plan.location)
        doc["category"] = plan.category
        if plan.perpetrator is not None:
            doc["perpetrator"] = plan.perpetrator
        if plan.target is not None:
            doc["target"] = plan.target
        if plan.claimant is not None:
            doc["claimant"] = plan.claimant
        if plan.killed or plan.wounded:
            casualties: dict[str, Any] = {}
            if plan.killed:
                casualties["killed"] = plan.killed
            if plan.wounded:
                casualties["wounded"] = plan.wounded
            if plan.civilian:
                casualties["civilian"] = True
            doc["casualties"] = casualties
        elif rng.random() < 0.03:  # some systems always send the block
            doc["casualties"] = {"killed": 0, "wounded": 0}
        if plan.described:
            doc["description"] = self._describe(plan, doc)
        return doc

    def _describe(self, plan: _Plan, doc: dict[str, Any]) -> str:
        rng = self.rng
        source = plan.source
        what = rng.choice(WHAT[plan.category])
        near = plan.event.town or min(
            PLACES,
            key=lambda p: (
                (PLACES[p][0] - plan.event.lat) ** 2 + (PLACES[p][1] - plan.event.lon) ** 2
            ),
        )
        at = "" if plan.day else f"at {plan.occurred.astimezone(LOCAL_TZ):%H:%M} "
        said = self._time_said(plan) if plan.day else ""
        if source.side is not None:
            near = LOCAL_NAMES.get("am" if source.side == "nk" else source.side, {}).get(near, near)
            who = doc.get("perpetrator", "the adversary")
            return (
                f"{at.capitalize() or 'Today '}{who} subjected our positions in the {near} "
                f"direction to {what}. Our units took adequate retaliatory measures."
            )
        if source.source_type in ("observation_post", "patrol", "sensor"):
            km = rng.uniform(0.5, 6)
            return f"{source.name}: {what} observed {km:.1f} km from {near} {at}".rstrip() + "."
        if source.source_type == "media":
            return (
                f"Local sources report {what} near {near}{said}; the defence ministry has not "
                "commented."
            )
        if source.source_type == "ngo":
            return f"Field team reports {what} near {near}; area marked and cordoned."
        if source.source_type == "civilian":
            return f"Resident called the hotline about {what} near {near}{said}."
        if source.source_type == "dataset":
            return f"{what.capitalize()} near {near}{said}."
        return f"{what.capitalize()} registered near {near} {at}({plan.event.area})."

    @staticmethod
    def _time_said(plan: _Plan) -> str:
        """When in the day a day-precision text says the event was (`TIME_SAID`): a clock
        time as a party's statement gives it (its error, rounded to 5 minutes), or the part
        of the day, or nothing; ", at around 14:35" or " in the evening". Drawn from the
        report's own generator: every text of one report says the same, and every other
        draw of the stream is what it was without it."""
        clock, part = TIME_SAID.get(plan.source.source_type, (0.0, 0.0))
        rng = random.Random(f"told-{plan.source.name}-{plan.report_id}")
        draw = rng.random()
        local = plan.event.occurred.astimezone(LOCAL_TZ)
        if draw < clock:
            err = max(-3.0, min(3.0, rng.gauss(0.0, 1.0))) * JITTER["party_statement"][0]
            stated = local + timedelta(minutes=err)
            minutes = round((stated.hour * 60 + stated.minute) / 5) * 5
            if stated.date() != local.date() or minutes >= 1440:
                return ""  # a statement's time in the next or the day before: none said
            return f", at around {minutes // 60:02d}:{minutes % 60:02d}"
        if draw < clock + part:
            hour = local.hour
            if hour < 5:
                return " overnight"
            if hour < 12:
                return " in the morning"
            if hour < 17:
                return " in the afternoon"
            return " in the evening" if hour < 21 else " late in the evening"
        return ""

    def _sample_report(self) -> dict[str, Any]:
        """A report of a new event, not sent (the base of a malformed message)."""
        area, _ = self._pick_area()
        event = self._new_event(area, False, self.clock - timedelta(minutes=10))
        source = self._pick_source(area, event)
        return self._document(self._plan(event, source))

    # -- malformed input ----------------------------------------------------------
    def _malformed(self) -> tuple[dict[str, Any] | None, bytes]:
        rng = self.rng
        base = self._sample_report()
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


def _day_time(t: datetime, kind: str) -> datetime:
    """The time a day-precision report states for an event at `t`: a dataset's, noon UTC of
    the local date (what `streams.tools.formats.acled_report` makes of ACLED's
    `event_date`); anyone else's, the start of the local day."""
    local = t.astimezone(LOCAL_TZ)
    if kind == "dataset":
        return datetime(local.year, local.month, local.day, 12, tzinfo=UTC)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _round_minutes(t: datetime, minutes: int) -> datetime:
    step = minutes * 60
    return datetime.fromtimestamp(round(t.timestamp() / step) * step, UTC)


def report_key_bytes(doc: Any) -> bytes | None:
    """The message key of a report object: source, unit separator, report_id."""
    if isinstance(doc, dict):
        source, report_id = doc.get("source"), doc.get("report_id")
        if isinstance(source, str) and isinstance(report_id, str):
            return f"{source}\x1f{report_id}".encode()
    return None


# -- live sending ------------------------------------------------------------------
def write_simulation(out: BinaryIO, *, count: int, rate: float, seed: int) -> int:
    """`count` simulated messages as JSON lines into `out`, their clock ending now (`rate`
    a second before it): a file of realistic reports to `feed` or `backtest`, with the
    stream's re-sends, revisions, withdrawals and late reports. Returns how many."""
    if count < 1 or rate <= 0:
        raise ValueError("count and rate must be positive")
    start = datetime.now(UTC) - timedelta(seconds=count / rate)
    written = 0
    for raw in Simulator(seed, start).messages(count, rate=rate):
        out.write(raw.replace(b"\n", b" ") + b"\n")  # one message, one line
        written += 1
    return written


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
        # failures right after the count: a line cut at 80 columns cut them off
        text = Text.from_markup(
            f"simulate → {topic}  sent {sent:,} ({sent / elapsed:.1f}/s){fails}  "
            f"dup {st.duplicates}  revised {st.revisions}  withdrawn {st.withdrawals}  "
            f"late {st.late}  malformed {st.malformed}  "
            f"bursts {st.bursts}{burst}{where}",
            overflow="ellipsis",
        )
        text.no_wrap = True  # one line: on a terminal what does not fit is cut
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
                _print_status(console, status())
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
    _print_status(console, status())
    if async_failures or sync_failures:
        first = async_failures[0] if async_failures else "the producer refused them"
        console.print(
            f"[red]{len(async_failures) + sync_failures} messages were not delivered:[/] {first}"
        )
    return delivered


def _print_status(console: Console, line: Text) -> None:
    """The status line, cut to the terminal's width on a terminal; whole into a pipe or a
    log, where rich's 80 columns cut off the late and malformed counts."""
    if console.is_terminal:
        console.print(line, no_wrap=True, overflow="ellipsis")
    else:
        console.print(line, soft_wrap=True)
