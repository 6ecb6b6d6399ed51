"""Linking quality: how well a grouping of reports into incidents matches the events the
reports describe (issue 10, item 3). Pure, over plain data.

`score(groups, truth)` compares the predicted incidents (`groups`: each a collection of
report identities) with the ground truth (`truth`: identity -> the event it describes), over
the same reports: the current ones (latest revision, not withdrawn).

* **Pairwise.** A pair of reports is *predicted-linked* when it is in one incident,
  *truly-linked* when its reports describe one event. Precision = correct / predicted pairs,
  recall = correct / true pairs (1.0 when there are none). Pairs weigh an incident by the
  square of its size, so one wrong merge of two big incidents costs much.
* **B-cubed.** Per report: precision = the share of its incident that describes its event,
  recall = the share of its event's reports in its incident; averaged over reports. Every
  report weighs the same, a singleton too.
* **Incident-level counts.** Events whose reports form exactly one incident, events split
  over several, incidents mixing several events.

`kinds` (optional, identity -> a label such as "exact" or "imprecise") breaks the pairwise
figures down by the labels of a pair's two reports, to tell where errors come from.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from streams.record.model import Ident


@dataclass(frozen=True, slots=True)
class PairCounts:
    true: int = 0
    predicted: int = 0
    correct: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.true if self.true else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class LinkingScore:
    reports: int
    events: int
    incidents: int
    pairs: PairCounts
    bcubed_precision: float
    bcubed_recall: float
    #: events whose reports are exactly one incident
    exact: int
    #: events whose reports are in more than one incident
    split: int
    #: incidents holding reports of more than one event
    mixed: int
    #: (label, label) sorted -> pair counts, when `kinds` was given
    by_kind: dict[tuple[str, str], PairCounts] = field(default_factory=dict)

    @property
    def precision(self) -> float:
        return self.pairs.precision

    @property
    def recall(self) -> float:
        return self.pairs.recall


def _pairs(members: Iterable[Ident]) -> Iterable[tuple[Ident, Ident]]:
    return itertools.combinations(sorted(members), 2)


def score(
    groups: Iterable[Collection[Ident]],
    truth: Mapping[Ident, str],
    kinds: Mapping[Ident, str] | None = None,
) -> LinkingScore:
    """The quality of `groups` against `truth`. Every report of `groups` must have a truth,
    and each report must be in one group only; the reports scored are those of `groups`."""
    incident_of: dict[Ident, int] = {}
    incidents: list[list[Ident]] = []
    for i, group in enumerate(groups):
        members = list(group)
        incidents.append(members)
        for ident in members:
            if ident in incident_of:
                raise ValueError(f"{ident} is in two incidents")
            if ident not in truth:
                raise ValueError(f"{ident} has no ground truth")
            incident_of[ident] = i
    events: dict[str, list[Ident]] = defaultdict(list)
    for ident in incident_of:
        events[truth[ident]].append(ident)

    predicted = {p for members in incidents for p in _pairs(members)}
    true = {p for members in events.values() for p in _pairs(members)}
    correct = predicted & true

    by_kind: dict[tuple[str, str], PairCounts] = {}
    if kinds is not None:
        counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])

        def label(pair: tuple[Ident, Ident]) -> tuple[str, str]:
            a, b = sorted((kinds[pair[0]], kinds[pair[1]]))
            return a, b

        for pair in true:
            counts[label(pair)][0] += 1
        for pair in predicted:
            counts[label(pair)][1] += 1
        for pair in correct:
            counts[label(pair)][2] += 1
        by_kind = {k: PairCounts(*v) for k, v in sorted(counts.items())}

    n = len(incident_of)
    b_precision = b_recall = 0.0
    overlap: Counter[tuple[int, str]] = Counter(
        (incident_of[ident], truth[ident]) for ident in incident_of
    )
    for ident, i in incident_of.items():
        shared = overlap[(i, truth[ident])]
        b_precision += shared / len(incidents[i])
        b_recall += shared / len(events[truth[ident]])

    exact = split = 0
    for members in events.values():
        held = {incident_of[m] for m in members}
        if len(held) > 1:
            split += 1
        elif len(incidents[next(iter(held))]) == len(members):
            exact += 1
    mixed = sum(1 for members in incidents if len({truth[m] for m in members}) > 1)
    return LinkingScore(
        reports=n,
        events=len(events),
        incidents=sum(1 for members in incidents if members),
        pairs=PairCounts(len(true), len(predicted), len(correct)),
        bcubed_precision=b_precision / n if n else 1.0,
        bcubed_recall=b_recall / n if n else 1.0,
        exact=exact,
        split=split,
        mixed=mixed,
        by_kind=by_kind,
    )


@dataclass(frozen=True, slots=True)
class FigureScore:
    """One casualty field (killed or wounded) of the incidents against the events' true
    figures. Each event is read from its incident: the one holding most of its current
    reports (the first given of equals), so a split event is read once, from its largest
    part, and a mixed incident stands for each event it holds most of."""

    #: events with a current report
    events: int
    #: events whose incident gives their true figure
    exact: int
    #: the events' true figures, summed
    truth: int
    #: what the incidents give below the truth, summed (the figures missed)
    under: int
    #: what they give above it, summed (the figures counted that did not happen)
    over: int


def figure_score(
    incidents: Iterable[tuple[Collection[Ident], int]],
    truth: Mapping[Ident, str],
    true_figure: Mapping[str, int],
) -> FigureScore:
    """How well the incidents' figures (`incidents`: each its reports and the figure it
    gives) match the events' (`true_figure`: event -> its true figure), the events being
    those of the reports given (`truth`: identity -> event)."""
    best: dict[str, tuple[int, int]] = {}  # event -> (reports of it held, the figure given)
    for members, figure in incidents:
        for event, held in Counter(truth[m] for m in members).items():
            if event not in best or held > best[event][0]:
                best[event] = (held, figure)
    exact = total = under = over = 0
    for event, (_, figure) in best.items():
        true = true_figure[event]
        total += true
        exact += figure == true
        under += max(true - figure, 0)
        over += max(figure - true, 0)
    return FigureScore(len(best), exact, total, under, over)
