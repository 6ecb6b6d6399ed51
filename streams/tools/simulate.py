"""A realistic, seeded synthetic report stream.

Zones flare up in bursts; party statements accuse the other side by name; the
mission's own posts often cannot attribute fire; casualties are rare; some reports
arrive hours or days late; a few are re-sent verbatim. Same seed, same stream.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from streams.config import Settings

# (place, lat, lon, weight): hot spots along the line of contact and the corridor
SITES: tuple[tuple[str, float, float, float], ...] = (
    ("Stepanakert", 39.815, 46.752, 1.0),
    ("Shusha", 39.758, 46.748, 1.5),
    ("Lachin", 39.640, 46.545, 2.0),
    ("Kornidzor", 39.545, 46.430, 1.0),
    ("Aghdam", 39.993, 46.930, 3.0),
    ("Askeran", 39.935, 46.787, 2.5),
    ("Martuni", 39.795, 47.113, 2.5),
    ("Martakert", 40.213, 46.813, 2.5),
    ("Hadrut", 39.520, 47.030, 2.0),
    ("Kalbajar", 40.107, 46.038, 1.0),
    ("Goris", 39.511, 46.339, 0.8),
    ("Sotk", 40.210, 45.920, 1.0),
    ("Ijevan", 40.878, 45.149, 0.6),
)
CATEGORIES: tuple[tuple[str, float], ...] = (
    ("small_arms_fire", 40),
    ("heavy_weapons_fire", 8),
    ("drone_strike", 3),
    ("airspace_violation", 6),
    ("positional_advance", 4),
    ("engineering_works", 8),
    ("obstruction_of_movement", 6),
    ("attack_on_peacekeepers", 1),
    ("civilian_harm", 4),
    ("detention", 2),
    ("property_destruction", 3),
    ("mine_incident", 5),
    ("other", 3),
)
SOURCES: tuple[tuple[str, str, float], ...] = (
    ("pkf-op-03", "observation_post", 3),
    ("pkf-op-12", "observation_post", 3),
    ("pkf-op-21", "observation_post", 2),
    ("pkf-patrol-2", "patrol", 2),
    ("jmc-aghdam", "monitoring_centre", 2),
    ("sensor-net-1", "sensor", 1),
    ("az-mod", "party_statement", 3),
    ("am-mod", "party_statement", 2),
    ("nk-mfa", "party_statement", 1.5),
    ("media-monitor", "media", 1.5),
    ("hotline", "civilian", 1),
    ("ngo-field", "ngo", 0.5),
)
# Whom each party statement accuses, in the words such statements use.
ACCUSED = {
    "az-mod": ("Armenian Armed Forces", "illegal Armenian armed formations", "Armenia"),
    "am-mod": ("Azerbaijani Armed Forces", "AZ MoD units", "Azerbaijan"),
    "nk-mfa": ("Azerbaijani Armed Forces", "Azerbaijan"),
}
OBSERVED_PERPETRATORS = ("unknown", "unidentified", "az", "am", "nk", "Azerbaijan", "Armenia", "")


class Simulator:
    def __init__(self, seed: int = 2020, start: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.clock = start or datetime.now(UTC)
        self._live = start is None
        self._serial = 0
        self._recent: list[dict[str, Any]] = []
        self._burst_site: tuple[str, float, float, float] | None = None
        self._burst_left = 0

    def _pick(self, items: tuple[Any, ...], weight_index: int) -> Any:
        return self.rng.choices(items, weights=[i[weight_index] for i in items])[0]

    def report(self) -> dict[str, Any]:
        rng = self.rng
        if self._recent and rng.random() < 0.03:  # a verbatim re-send
            return dict(rng.choice(self._recent))
        if self._burst_left <= 0 and rng.random() < 0.01:
            self._burst_site, self._burst_left = self._pick(SITES, 3), rng.randint(8, 25)
        if self._burst_left > 0 and self._burst_site is not None:
            site = self._burst_site
            self._burst_left -= 1
        else:
            site = self._pick(SITES, 3)
        place, lat, lon, _ = site
        source, source_type, _ = self._pick(SOURCES, 2)
        category: str = self._pick(CATEGORIES, 1)[0]
        lag = timedelta(minutes=rng.expovariate(1 / 20))
        if rng.random() < 0.05:  # late: hours to days
            lag = timedelta(hours=rng.uniform(3, 24 * 6))
        occurred = self.clock - lag
        self._serial += 1
        doc: dict[str, Any] = {
            "report_id": f"{source}-{self._serial:07d}",
            "source": source,
            "source_type": source_type,
            "occurred_at": occurred.isoformat(timespec="seconds"),
            "category": category,
        }
        if rng.random() < 0.15:
            doc["location"] = {"place": place}
        else:
            doc["location"] = {
                "lat": round(lat + rng.uniform(-0.02, 0.02), 5),
                "lon": round(lon + rng.uniform(-0.02, 0.02), 5),
            }
        if source in ACCUSED:
            doc["perpetrator"] = rng.choice(ACCUSED[source])
        else:
            perpetrator = rng.choice(OBSERVED_PERPETRATORS)
            if perpetrator:
                doc["perpetrator"] = perpetrator
        if category == "attack_on_peacekeepers":
            doc["target"] = "Russian peacekeepers"
        elif category == "civilian_harm":
            doc["target"] = "civilians"
        roll = rng.random()
        if roll < 0.02:
            doc["casualties"] = {
                "killed": rng.randint(1, 3),
                "wounded": rng.randint(0, 3),
                "civilian": category == "civilian_harm",
            }
        elif roll < 0.07:
            doc["casualties"] = {
                "wounded": rng.randint(1, 4),
                "civilian": category == "civilian_harm",
            }
        if rng.random() < 0.4:
            doc["description"] = f"{category.replace('_', ' ')} reported near {place}"
        self._recent.append(doc)
        if len(self._recent) > 200:
            self._recent.pop(0)
        return doc

    def reports(self, n: int | None = None, *, rate: float = 20.0) -> Iterator[dict[str, Any]]:
        """`n` reports (forever when None), the simulated clock advancing 1/rate s each."""
        step = timedelta(seconds=1 / rate)
        count = 0
        while n is None or count < n:
            if self._live:
                self.clock = datetime.now(UTC)
            else:
                self.clock += step
            yield self.report()
            count += 1


def bench_reports(n: int, seed: int, now: datetime) -> Iterator[bytes]:
    """n distinct, valid, encoded reports for the benchmark (~250 bytes each)."""
    rng = random.Random(seed)
    for i in range(n):
        _place, lat, lon, _ = SITES[i % len(SITES)]
        source, source_type, _ = SOURCES[i % len(SOURCES)]
        ago = rng.uniform(0, 86_400) if rng.random() < 0.95 else rng.uniform(86_400, 6 * 86_400)
        doc = {
            "report_id": f"bench-{i:08d}",
            "source": source,
            "source_type": source_type,
            "occurred_at": (now - timedelta(seconds=ago)).isoformat(timespec="seconds"),
            "location": {
                "lat": round(lat + rng.uniform(-0.01, 0.01), 5),
                "lon": round(lon + rng.uniform(-0.01, 0.01), 5),
            },
            "category": CATEGORIES[i % len(CATEGORIES)][0],
            "perpetrator": rng.choice(("Armenian Armed Forces", "AZ MoD", "unknown", "nk")),
            "casualties": {"killed": 0, "wounded": 1 if i % 50 == 0 else 0},
        }
        yield json.dumps(doc, separators=(",", ":")).encode()


def run_simulation(
    settings: Settings,
    *,
    rate: float,
    duration: float | None,
    seed: int,
    console: Console,
    stop: threading.Event | None = None,
) -> int:
    """Send the simulated stream in real time; returns how many reports were sent."""
    from streams.tools.kafka_io import producer_for

    producer = producer_for(settings)
    sim = Simulator(seed)
    sent = 0
    started = time.monotonic()
    try:
        for doc in sim.reports(rate=rate):
            if stop is not None and stop.is_set():
                break
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            key = f"{doc['source']}\x1f{doc['report_id']}".encode()
            producer.send(settings.reports_topic, json.dumps(doc).encode(), key=key)
            sent += 1
            if sent % max(int(rate * 10), 1) == 0:
                console.print(f"simulate: {sent} reports sent ({sent / max(elapsed, 1e-9):.1f}/s)")
            # pace to the wanted rate
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                if stop is not None:
                    stop.wait(ahead)
                else:
                    time.sleep(ahead)
    finally:
        producer.flush(timeout=30)
        producer.close(timeout=10)
    return sent
