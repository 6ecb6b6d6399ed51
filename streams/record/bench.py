"""How fast the record applies a zone-heavy report stream, and how much its state weighs.

    python3 -m streams.record.bench [--n 100000] [--zones 4] [--days 30] [--seed 1]
    python3 -m streams.record.bench --identities 1000000   # bytes of revision state
    python3 -m streams.record.bench --like-pipeline-bench --n 20000 --days 1

A measurement, not a test: it prints figures for docs/record.md. The stream is synthetic
but shaped like the real one: events in a few zones, each reported by one to four sources
(observation posts, patrols, both ministries accusing each other, media), times and places
jittered, arriving out of order, with re-sends, revisions, stale revisions and withdrawals.
"""

from __future__ import annotations

import argparse
import random
import resource
import time
import tracemalloc
from collections import Counter
from dataclasses import replace

from schemas.codes import Category, SourceType
from streams.record.model import ReportVersion, Version, Withdrawal, identity_key
from streams.record.record import Record
from streams.record.revisions import IdentityState

_CATEGORIES = (
    Category.SMALL_ARMS_FIRE,
    Category.SMALL_ARMS_FIRE,
    Category.HEAVY_WEAPONS_FIRE,
    Category.DRONE_STRIKE,
    Category.ENGINEERING_WORKS,
    Category.AIRSPACE_VIOLATION,
)


def stream(n: int, zones: int, days: int, seed: int) -> list[Version]:
    """About `n` versions in arrival order."""
    rng = random.Random(seed)
    firsts: list[tuple[float, ReportVersion]] = []  # (arrival, first version)
    serial = 0
    while len(firsts) < n:
        zone = rng.randrange(zones)
        t = rng.uniform(0, days * 86_400)
        lat = 39.5 + zone * 0.3 + rng.uniform(0, 0.2)
        lon = 46.5 + rng.uniform(0, 0.25)
        category = rng.choice(_CATEGORIES)
        shooter = rng.choice(("az", "am"))
        killed = rng.choice((0, 0, 0, 0, 1, 2))
        for s in rng.sample(range(9), rng.choice((1, 1, 2, 2, 3, 4))):
            serial += 1
            party = s in (7, 8)
            claimant = ("az", "am")[s - 7] if party else None
            r = ReportVersion(
                source=f"z{zone}-src{s}",
                report_id=f"r{serial}",
                revision=0,
                source_type=SourceType.PARTY_STATEMENT if party else SourceType.OBSERVATION_POST,
                occurred=t + rng.uniform(-600, 600),
                zone=f"zone-{zone}",
                lat=lat + rng.uniform(-0.008, 0.008),
                lon=lon + rng.uniform(-0.008, 0.008),
                category=category,
                perpetrator=("am" if claimant == "az" else "az") if party else shooter,
                claimant=claimant,
                killed=killed * (3 if party else 1),
            )
            firsts.append((t + rng.expovariate(1 / 3600), r))
    timed: list[tuple[float, Version]] = list(firsts)
    for arrival, r in firsts:
        roll = rng.random()
        if roll < 0.08:  # a re-send
            timed.append((arrival + rng.uniform(1, 7200), r))
        elif roll < 0.18:  # a correction, sometimes followed by a stale copy of the original
            later = arrival + rng.uniform(60, 86_400)
            fixed = replace(
                r,
                revision=1,
                occurred=r.occurred + rng.uniform(-300, 300),
                killed=r.killed + rng.choice((0, 1)),
                digest=b"",
            )
            timed.append((later, fixed))
            if rng.random() < 0.2:
                timed.append((later + 60, r))
        elif roll < 0.2:
            timed.append((arrival + rng.uniform(60, 86_400), Withdrawal(r.source, r.report_id, 1)))
    timed.sort(key=lambda x: x[0])
    return [v for _, v in timed[:n]]


#: The shape of `ceasefire-monitor bench`'s reports (streams/tools/bench_reports.py,
#: `bench_reports`): 11 sites jittered about 1 km, 17 sources in turn, the 13 categories in
#: turn, event times uniform over the period and unrelated to arrival order.
_SITES = 11
_SOURCES = 17


def bench_like(n: int, days: int, seed: int) -> list[Version]:
    rng = random.Random(seed)
    cats = sorted(Category)
    out: list[Version] = []
    for i in range(n):
        site = i % _SITES
        out.append(
            ReportVersion(
                source=f"src-{(i * 7) % _SOURCES}",
                report_id=f"bench-{i}",
                revision=0,
                source_type=SourceType.OBSERVATION_POST,
                occurred=rng.random() * days * 86_400,
                zone=f"zone-{site}",
                lat=39.5 + site * 0.1 + (rng.random() - 0.5) * 0.02,
                lon=46.5 + (rng.random() - 0.5) * 0.02,
                category=cats[(i * 5 + i // len(cats)) % len(cats)],
            )
        )
    return out


def run(
    n: int, zones: int, days: int, seed: int, like_bench: bool = False, trace: bool = False
) -> None:
    versions = bench_like(n, days, seed) if like_bench else stream(n, zones, days, seed)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:  # slows the run down several times: the throughput printed is then not it
        tracemalloc.start()
    record = Record()
    outcomes: Counter[str] = Counter()
    published = entries = 0
    start, cpu = time.perf_counter(), time.process_time()
    for v in versions:
        step = record.apply(v)
        outcomes[step.outcome.value] += 1
        published += len(step.incidents)
        entries += len(step.entries)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    traced = tracemalloc.get_traced_memory()[0] if trace else 0
    tracemalloc.stop()
    incidents = sum(1 for _ in record.incidents())
    reports = sum(1 for _ in record.reports())
    shape = f"{_SITES} sites like the pipeline bench" if like_bench else f"{zones} zones"
    print(f"{len(versions):,} versions, {shape}, {days} days, seed {seed}")
    print(
        f"  applied in {elapsed:.2f} s ({cpu:.2f} s CPU): "
        f"{len(versions) / cpu:,.0f} versions per CPU second"
    )
    print(f"  outcomes: {dict(sorted(outcomes.items()))}")
    print(f"  current: {reports:,} reports in {incidents:,} incidents")
    print(f"  published {published:,} incident versions, {entries:,} changelog entries")
    print(f"  peak RSS grew by {(rss1 - rss0) / 1024:.0f} MB")
    if trace:
        print(
            f"  state: {traced / 2**20:.0f} MB traced, {traced / max(1, reports):,.0f} bytes "
            "per current report (revision state, reports, index, incidents)"
        )


def identity_bytes(n: int) -> None:
    """Bytes per identity of revision state, by tracemalloc (shard overhead included)."""
    tracemalloc.start()
    state = IdentityState()
    for i in range(n):
        state.apply(Withdrawal(f"src-{i % 97}", f"report-{i}", 1_700_000_000 + i))
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(state) == n
    per = current / n
    start = time.perf_counter()
    for i in range(0, n, max(1, n // 100_000)):
        state.get_key(identity_key(f"src-{i % 97}", f"report-{i}"))
    lookups = len(range(0, n, max(1, n // 100_000)))
    per_lookup = (time.perf_counter() - start) / lookups * 1e6
    print(f"{n:,} identities: {per:.1f} bytes each; lookup {per_lookup:.2f} us")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python3 -m streams.record.bench", description=__doc__)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--zones", type=int, default=4)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--identities", type=int, default=0, help="measure revision state instead")
    p.add_argument(
        "--like-pipeline-bench",
        action="store_true",
        help="the density and disorder of `ceasefire-monitor bench` (use with --days 1)",
    )
    p.add_argument("--trace-memory", action="store_true", help="bytes of state (slow)")
    args = p.parse_args(argv)
    if args.identities:
        identity_bytes(args.identities)
    else:
        run(
            args.n,
            args.zones,
            args.days,
            args.seed,
            args.like_pipeline_bench,
            args.trace_memory,
        )


if __name__ == "__main__":
    main()
