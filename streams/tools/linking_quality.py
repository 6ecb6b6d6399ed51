"""Linking quality measured against the simulator's ground truth (issue 10, item 3).

    python3 -m streams.tools.linking_quality [--events 2000] [--seed 1] [--per-day 60]
    python3 -m streams.tools.linking_quality --seeds 1-5  # the main figures, seed by seed
    python3 -m streams.tools.linking_quality --bench      # CPU time of the linker alone
    python3 -m streams.tools.linking_quality --flood 1000 # one zone flooded at one point
    python3 -m streams.tools.linking_quality --chain 600  # a day's fire, a report a minute

The simulator (`Simulator.events`) says which event every message is about. Each message
goes the monitor's way: validated (`schemas.validation`), classified
(`streams.classify.Classifier`), read as a record version (`streams.record.documents`) and
applied to a `Record` (revision state and incident book) in arrival order. Then the current
reports' incidents are scored against the events (`streams.record.quality`): pairwise
precision and recall, B-cubed, incident-level counts, at the default `LinkRule` and at other
windows and distances (the trade-off table), and at other event densities. docs/record.md
("Linking quality") has the figures.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from schemas.codes import Category, LocationPrecision, SourceType, TimePrecision
from schemas.validation import Rejection, validate_report
from streams.classify import Classifier, Gazetteer, ZoneCatalogue
from streams.config import Settings
from streams.record.documents import version_of
from streams.record.linking import LinkRule, ZoneLinker, cluster_precise
from streams.record.linking import _order as canonical_order
from streams.record.model import Ident, ReportVersion, Version
from streams.record.quality import FigureScore, LinkingScore, PairCounts, figure_score, score
from streams.record.record import Record
from streams.tools.simulate import SimEvent, Simulator

#: Where the simulated timeline starts (any time after the ceasefire would do).
START = datetime(2021, 5, 1, tzinfo=UTC)

#: (window minutes, distance km) of the trade-off table; the default rule is (30, 3).
TRADE_OFF: tuple[tuple[float, float], ...] = (
    (15, 1.5),
    (15, 3),
    (30, 1.5),
    (30, 3),
    (30, 5),
    (60, 3),
    (60, 5),
)
#: Events a day of the density table (the default run's is `--per-day`).
DENSITIES: tuple[float, ...] = (30, 60, 120, 240)


@dataclass
class SimulatedRun:
    """The simulated messages as record versions, in arrival order, with their truth."""

    versions: list[Version] = field(default_factory=list)
    #: identity -> the id of the event the report describes
    truth: dict[Ident, str] = field(default_factory=dict)
    events: dict[str, SimEvent] = field(default_factory=dict)
    messages: int = 0
    #: messages the schema rejected, and reports classified outside their event's zone:
    #: both 0 for a sound simulator
    rejected: int = 0
    misplaced: int = 0
    days: float = 0.0


def simulate(events: int, *, seed: int = 1, per_day: float = 60.0) -> SimulatedRun:
    """`events` simulated events, their messages validated, classified and read as versions."""
    sim = Simulator(seed, start=START)
    classifier = Classifier(ZoneCatalogue.load(), Gazetteer.load())
    run = SimulatedRun()
    for event_id, doc in sim.events(events, per_day=per_day):
        run.messages += 1
        report = validate_report(json.dumps(doc).encode(), now=sim.clock)
        if isinstance(report, Rejection):
            run.rejected += 1
            continue
        document = classifier.document(report, sim.clock)
        version = version_of(document.model_dump(mode="json"))
        if isinstance(version, ReportVersion) and version.zone != sim.truth[event_id].zone:
            run.misplaced += 1
        run.truth[version.ident] = event_id
        run.versions.append(version)
    run.events = sim.truth
    last = max((e.occurred for e in sim.truth.values()), default=START)
    run.days = (last - START).total_seconds() / 86_400
    return run


def precision_kind(r: ReportVersion) -> str:
    """`precise` (an exact time and a point) or `imprecise` (a day, or a town or region)."""
    exact = r.time_precision is TimePrecision.EXACT
    point = r.location_precision is LocationPrecision.POINT
    return "precise" if exact and point else "imprecise"


@dataclass(frozen=True)
class Measured:
    score: LinkingScore
    #: the pairs by burst events ("burst") and the rest ("background")
    by_burst: dict[tuple[str, str], PairCounts]
    current: int
    #: "killed" and "wounded" of the record's incidents against the truth (`figure_score`);
    #: empty for a grouping the record did not make
    figures: dict[str, FigureScore] = field(default_factory=dict)


def what_if_groups(
    reports: Iterable[ReportVersion], rule: LinkRule, truth: Mapping[Ident, str] | None = None
) -> list[list[Ident]]:
    """A grouping the monitor does NOT make, to measure what refusing ambiguous links would
    buy (docs/record.md, "Linking quality"): precise reports grouped as the monitor does,
    but an imprecise report (`precision_kind`) joins an incident only when it is the one
    incident it links with completely (else it stays alone). With `truth` (report -> its
    event), an oracle instead, the ceiling of any choice: an imprecise report joins the
    incident it links with completely that holds the most reports of its own event (ties:
    the better fit), or stays alone when none holds any."""
    by_zone: dict[str, list[ReportVersion]] = defaultdict(list)
    for r in reports:
        by_zone[r.zone].append(r)
    groups: list[list[Ident]] = []
    for zone_reports in by_zone.values():
        linker = ZoneLinker(rule)
        for r in zone_reports:
            linker.live[r.ident] = r
            linker._index_add(r)
        anchor: dict[Ident, Ident] = {}
        members: dict[Ident, list[ReportVersion]] = {}
        precise = [r for r in zone_reports if precision_kind(r) == "precise"]
        for group in cluster_precise(precise, linker.neighbours, rule.incident_score):
            members[group[0].ident] = group
            for m in group:
                anchor[m.ident] = group[0].ident
        imprecise = [r for r in zone_reports if precision_kind(r) != "precise"]
        for u in sorted(imprecise, key=canonical_order):
            key = canonical_order(u)
            earlier = [n for n in linker.neighbours(u) if n[2] < key]
            links: dict[Ident, list[float]] = defaultdict(list)
            for m, fit, _o in earlier:
                links[anchor[m.ident]].append(fit)
            fits = {a: fs for a, fs in links.items() if len(fs) == len(members[a])}
            if truth is None:
                a = next(iter(fits)) if len(fits) == 1 else u.ident
            else:
                a = u.ident
                best: tuple[int, float] | None = None
                for c, fs in fits.items():
                    own = sum(truth[m.ident] == truth[u.ident] for m in members[c])
                    ranked = (-own, rule.incident_score(u, fs, members[c]))
                    if own and (best is None or ranked < best):
                        best, a = ranked, c
            anchor[u.ident] = a
            members.setdefault(a, []).append(u)
        groups.extend([m.ident for m in ms] for ms in members.values())
    return groups


def measure(run: SimulatedRun, rule: LinkRule | None = None) -> Measured:
    """Apply the run's versions to a `Record` and score its incidents against the truth."""
    record = Record(rule)
    for version in run.versions:
        record.apply(version)
    groups = [
        [m.ident for m in members]
        for linker in record.book.zones.values()
        for members in linker.members.values()
    ]
    current = list(record.reports())
    incidents = [
        ([(s, r) for s, r, _ in f.reports], f.killed, f.wounded)
        for _, f in record.book.open_fields()
    ]
    figures = {
        name: figure_score(
            [(members, figs[i]) for members, *figs in incidents],
            run.truth,
            {e.event_id: getattr(e, name) for e in run.events.values()},
        )
        for i, name in enumerate(("killed", "wounded"))
    }
    return replace(_measured(run, groups, current), figures=figures)


def _measured(
    run: SimulatedRun, groups: list[list[Ident]], current: list[ReportVersion]
) -> Measured:
    kinds = {r.ident: precision_kind(r) for r in current}
    burst = {
        r.ident: "burst" if run.events[run.truth[r.ident]].burst else "background" for r in current
    }
    return Measured(
        score=score(groups, run.truth, kinds),
        by_burst=score(groups, run.truth, burst).by_kind,
        current=len(current),
    )


def _current(run: SimulatedRun) -> list[ReportVersion]:
    """The current reports of the run (the latest revision of each, not withdrawn)."""
    record = Record()
    for version in run.versions:
        record.apply(version)
    return list(record.reports())


def _rule(rule: LinkRule, window_minutes: float, distance_km: float) -> LinkRule:
    return replace(rule, window_seconds=window_minutes * 60, distance_km=distance_km)


def describe(rule: LinkRule) -> str:
    """The rule's settings, as `CEASEFIRE_LINK_*` names them."""
    day = (
        "a day each side"
        if rule.day_utc_offset_hours is None
        else f"the day at UTC{rule.day_utc_offset_hours:+g}"
    )
    return (
        f"{rule.window_seconds / 60:g} min, {rule.distance_km:g} km, {day}, category mismatch "
        f"{rule.category_mismatch:g}; unmatched category {rule.unmatched_category:g}, harm "
        f"{rule.unmatched_harm:g}, perpetrator {rule.unmatched_perpetrator:g}, target "
        f"{rule.unmatched_target:g}, place {rule.unmatched_place:g}, time of day "
        f"{rule.unmatched_time_of_day:g}; crowd limit {rule.crowd_limit}; chain limit "
        f"{rule.chain_limit or 'none'}, blocks of {rule.chain_block_seconds / 60:g} min"
    )


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _f(x: float) -> str:
    return f"{x:.3f}"


def report(events: int, seed: int, per_day: float, rule: LinkRule | None = None) -> str:
    """The figures as Markdown, for docs/record.md, at `rule` (default: the defaults)."""
    rule = rule or LinkRule()
    started = time.perf_counter()
    run = simulate(events, seed=seed, per_day=per_day)
    base = measure(run, rule)
    s = base.score
    lines = [
        f"{events} events (seed {seed}, {per_day:g} a day, {run.days:.0f} days): "
        f"{run.messages} messages, {len(run.versions)} valid ({run.rejected} rejected), "
        f"{base.current} current reports ({run.misplaced} outside their event's zone)",
        "",
        f"Rule: {describe(rule)}.",
        "",
        _row(("", "precision", "recall", "F1")),
        _row(("---", "---", "---", "---")),
        _row(("pairwise", _f(s.precision), _f(s.recall), _f(s.pairs.f1))),
        _row(("B-cubed", _f(s.bcubed_precision), _f(s.bcubed_recall), "")),
        "",
        f"{s.events} events with a current report, {s.incidents} incidents: {s.exact} events "
        f"exactly one incident, {s.split} split over several, {s.mixed} incidents mixing "
        f"events; {s.pairs.true} true pairs, {s.pairs.predicted} predicted, "
        f"{s.pairs.correct} correct.",
        "",
        _row(("pairs", "true", "predicted", "correct", "precision", "recall")),
        _row(("---",) * 6),
    ]
    breakdown = {f"{a} + {b}": c for (a, b), c in s.by_kind.items()}
    breakdown |= {f"{a} + {b}": c for (a, b), c in base.by_burst.items()}
    for name, c in breakdown.items():
        lines.append(_row((name, c.true, c.predicted, c.correct, _f(c.precision), _f(c.recall))))
    lines += [
        "",
        "Casualty figures (each event read from the incident holding most of its reports; "
        'docs/record.md, "Incident fields"):',
        "",
        _row(("", "events", "exact", "true total", "below the truth", "above the truth")),
        _row(("---",) * 6),
    ]
    for name, fs in base.figures.items():
        lines.append(_row((name, fs.events, fs.exact, fs.truth, fs.under, fs.over)))
    lines += [
        "",
        "Trade-off (the same run, the rule's other settings):",
        "",
        _row(("window", "distance", "precision", "recall", "F1", "B³ precision", "B³ recall")),
        _row(("---",) * 7),
    ]
    for window, distance in TRADE_OFF:
        m = (
            base.score
            if (window * 60, distance) == (rule.window_seconds, rule.distance_km)
            else measure(run, _rule(rule, window, distance)).score
        )
        lines.append(
            _row(
                (
                    f"{window:g} min",
                    f"{distance:g} km",
                    _f(m.precision),
                    _f(m.recall),
                    _f(m.pairs.f1),
                    _f(m.bcubed_precision),
                    _f(m.bcubed_recall),
                )
            )
        )
    current = list(_current(run))
    w = _measured(run, what_if_groups(current, rule), current).score
    pp = w.by_kind.get(("precise", "precise"), PairCounts())
    o = _measured(run, what_if_groups(current, rule, run.truth), current).score
    lines += [
        "",
        "What if an imprecise report linked only when exactly one incident fits (not the "
        "monitor's grouping; the rule, the same run): "
        f"precision {_f(w.precision)}, recall {_f(w.recall)}, F1 {_f(w.pairs.f1)}, "
        f"precise pairs {_f(pp.precision)} / {_f(pp.recall)}.",
        "",
        "The ceiling of any choice for imprecise reports (an oracle: each joins the incident "
        "it links with completely that holds its own event's reports, else stays alone; "
        f"precise reports as the monitor groups them): precision {_f(o.precision)}, "
        f"recall {_f(o.recall)}, F1 {_f(o.pairs.f1)}.",
    ]
    lines += [
        "",
        "Density (the rule, the same seed and number of events):",
        "",
        _row(("events a day", "precision", "recall", "F1")),
        _row(("---",) * 4),
    ]
    for density in DENSITIES:
        m = (
            base.score
            if density == per_day
            else measure(simulate(events, seed=seed, per_day=density), rule).score
        )
        lines.append(_row((f"{density:g}", _f(m.precision), _f(m.recall), _f(m.pairs.f1))))
    lines += ["", f"({time.perf_counter() - started:.1f} s)"]
    return "\n".join(lines)


def linker_ops(versions: Iterable[Version]) -> list[tuple[ZoneLinker, str, object]]:
    """The linker calls the record makes for `versions` (revision state applied first):
    (zone's linker, "upsert" or "remove", argument), so that a benchmark times the linker
    alone."""
    from streams.record.revisions import IdentityState, Outcome

    state = IdentityState()
    linkers: dict[str, ZoneLinker] = {}
    ops: list[tuple[ZoneLinker, str, object]] = []
    for v in versions:
        d = state.apply(v)
        if isinstance(v, ReportVersion) and d.outcome in (
            Outcome.NEW,
            Outcome.REVISED,
            Outcome.REINSTATED,
        ):
            if d.zone_before is not None and d.zone_before != v.zone:
                ops.append((linkers[d.zone_before], "remove", v.ident))
            ops.append((linkers.setdefault(v.zone, ZoneLinker()), "upsert", v))
        elif d.outcome is Outcome.WITHDRAWN and d.zone_before is not None:
            ops.append((linkers[d.zone_before], "remove", v.ident))
    return ops


def bench(repeat: int = 9) -> str:
    """CPU time of the linker alone (`ZoneLinker.upsert`/`remove`) on the simulated run
    (seed 1, 2,000 events) and on `streams.record.bench`'s denser stream: the best of
    `repeat` runs, each on fresh linkers."""
    from streams.record.bench import stream

    runs = {
        "simulator, 2,000 events, 60 a day": simulate(2000, seed=1, per_day=60).versions,
        "record bench stream, 20,000 versions, 4 zones, 30 days": stream(20_000, 4, 30, 1),
    }
    lines = [_row(("stream", "linker calls", "best CPU s", "µs per call")), _row(("---",) * 4)]
    for name, versions in runs.items():
        best = math.inf
        calls = 0
        for _ in range(repeat):
            ops = linker_ops(versions)
            calls = len(ops)
            gc.collect()
            gc.freeze()  # the inputs' objects are not the linker's: keep the collector off them
            cpu = time.process_time()
            for linker, op, arg in ops:
                if op == "upsert":
                    linker.upsert(arg)  # type: ignore[arg-type]
                else:
                    linker.remove(arg)  # type: ignore[arg-type]
            best = min(best, time.process_time() - cpu)
            gc.unfreeze()
        lines.append(_row((name, f"{calls:,}", f"{best:.3f}", f"{best / calls * 1e6:.0f}")))
    return "\n".join(lines)


def flood(n: int, sources: int = 3) -> str:
    """`n` reports of `sources` sources at one point and one second, in one zone, upserted
    one by one into a `ZoneLinker`, and applied to a `Record` (revision state, incident
    fields, tallies, changelog entries): CPU time, at n/2, n and 2n to show how it grows."""
    lines = [
        _row(("reports", "linker CPU s", "µs per report", "Record CPU s", "µs per report")),
        _row(("---",) * 5),
    ]
    for count in (n // 2, n, 2 * n):
        reports = [flood_report(i, sources) for i in range(count)]
        linker = ZoneLinker()
        cpu = time.process_time()
        for r in reports:
            linker.upsert(r)
        alone = time.process_time() - cpu
        record = Record()
        cpu = time.process_time()
        for r in reports:
            record.apply(r)
        whole = time.process_time() - cpu
        lines.append(
            _row(
                (
                    f"{count:,}",
                    f"{alone:.3f}",
                    f"{alone / count * 1e6:.0f}",
                    f"{whole:.3f}",
                    f"{whole / count * 1e6:.0f}",
                )
            )
        )
    return "\n".join(lines)


def chain(n: int, sources: int = 3, spacing: float = 69.0) -> str:
    """`n` precise reports of `sources` sources at one point, `spacing` seconds apart (an
    observation post's day of fire, reported every minute or so), applied newest first to a
    `Record`: each links with its neighbours within the window, so together they are one
    component of the precise link graph, a chain past `LinkRule.chain_limit` reports, whose
    changes regroup the pieces they touch (docs/record.md, "A chain"). CPU time at each
    fifth of `n`, to show how it grows (linearly; as its square before the limit), and the
    most index entries one change examined so far (`ZoneLinker.examined`)."""
    reports = [chain_report(i, sources, spacing) for i in range(n)]
    lines = [
        _row(("reports", "Record CPU s", "µs per report, last fifth", "most examined by a change")),
        _row(("---",) * 4),
    ]
    record = Record()
    started = last = time.process_time()
    last_k, step = 0, max(1, n // 5)
    most = 0
    for k, r in enumerate(reports, 1):
        linker = record.book.zones.get(r.zone)
        before = 0 if linker is None else linker.examined
        record.apply(r)
        most = max(most, record.book.zones[r.zone].examined - before)
        if k % step == 0 or k == n:
            now = time.process_time()
            per = (now - last) / (k - last_k)
            lines.append(_row((f"{k:,}", f"{now - started:.2f}", f"{per * 1e6:,.0f}", f"{most:,}")))
            last, last_k = now, k
    return "\n".join(lines)


def chain_report(i: int, sources: int = 3, spacing: float = 69.0) -> ReportVersion:
    """The i-th report of a chain: `spacing` seconds before the (i-1)-th, at one point."""
    return ReportVersion(
        source=f"chain-{i % sources}",
        report_id=f"c{i:07d}",
        revision=0,
        source_type=SourceType.OBSERVATION_POST,
        occurred=1_700_000_000.0 - spacing * i,
        zone="chained",
        lat=39.795,
        lon=47.113,
        category=Category.SMALL_ARMS_FIRE,
    )


def flood_report(i: int, sources: int = 3) -> ReportVersion:
    """The i-th report of a flood: one zone, one point, one second, `sources` sources; its
    id a hash of i, so that each arrives somewhere in the middle of the canonical order (as
    random ids would), the worst case for re-deciding."""
    return ReportVersion(
        source=f"flood-{i % sources}",
        report_id=hashlib.blake2b(str(i).encode(), digest_size=8).hexdigest(),
        revision=0,
        source_type=SourceType.OBSERVATION_POST,
        occurred=1_700_000_000.0,
        zone="flooded",
        lat=39.8,
        lon=46.75,
        category=Category.SMALL_ARMS_FIRE,
    )


def seeds_table(events: int, seeds: Sequence[int], per_day: float, rule: LinkRule) -> str:
    """Pairwise, B-cubed and precise-pair precision / recall for each seed, and their mean
    (the table of docs/record.md, "Measured at the default rule")."""
    started = time.perf_counter()
    lines = [
        f"{events} events a seed, {per_day:g} a day. Rule: {describe(rule)}.",
        "",
        _row(["seed", "pairwise P / R", "B-cubed P / R", "precise pairs P / R"]),
        _row(["---"] * 4),
    ]
    sums = [0.0, 0.0, 0.0, 0.0]
    for seed in seeds:
        s = measure(simulate(events, seed=seed, per_day=per_day), rule).score
        precise = s.by_kind.get(("precise", "precise"), PairCounts())
        figures = (s.precision, s.recall, s.bcubed_precision, s.bcubed_recall)
        sums = [a + b for a, b in zip(sums, figures, strict=True)]
        lines.append(
            _row(
                [
                    seed,
                    f"{_f(s.precision)} / {_f(s.recall)}",
                    f"{_f(s.bcubed_precision)} / {_f(s.bcubed_recall)}",
                    f"{_f(precise.precision)} / {_f(precise.recall)}",
                ]
            )
        )
    n = len(seeds)
    mean = [x / n for x in sums]
    lines.append(
        _row(["mean", f"{_f(mean[0])} / {_f(mean[1])}", f"{_f(mean[2])} / {_f(mean[3])}", ""])
    )
    lines += ["", f"({time.perf_counter() - started:.1f} s)"]
    return "\n".join(lines)


def _seeds(text: str) -> list[int]:
    """`1-5` or `1,3,7`."""
    try:
        if "-" in text:
            first, last = (int(x) for x in text.split("-", 1))
            seeds = list(range(first, last + 1))
        else:
            seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not seeds: {text!r} (1-5, or 1,3,7)") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    return seeds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m streams.tools.linking_quality",
        description="Linking precision and recall against the simulator's ground truth.",
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seeds", type=_seeds, help="the main figures for each of these seeds: 1-5, or 1,3,7"
    )
    parser.add_argument("--per-day", type=float, default=60.0, help="events a day")
    parser.add_argument("--bench", action="store_true", help="time the linker alone")
    parser.add_argument("--flood", type=int, default=0, help="time a flood of N reports")
    parser.add_argument(
        "--chain", type=int, default=0, help="time N reports a minute apart at one point"
    )
    parser.add_argument(
        "--chain-spacing", type=float, default=69.0, help="seconds between a chain's reports"
    )
    args = parser.parse_args(argv)
    if args.bench:
        print(bench())
        return 0
    if args.flood:
        print(flood(args.flood))
        return 0
    if args.chain:
        print(chain(args.chain, spacing=args.chain_spacing))
        return 0
    if args.events <= 0 or args.per_day <= 0:
        parser.error("--events and --per-day must be positive")
    # the worker's rule: the defaults, or what CEASEFIRE_LINK_* set
    if args.seeds:
        print(seeds_table(args.events, args.seeds, args.per_day, Settings().link_rule()))
        return 0
    print(report(args.events, args.seed, args.per_day, Settings().link_rule()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
