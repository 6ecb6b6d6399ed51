"""A child process's metrics, relayed into the worker's, so that `/metrics` stays one
process's answer whichever process did the work (`child_process.py`).

The child takes `changes()` of the metrics it names and sends them with its status; the
worker's `MetricMirror.apply` adds them to its own metric objects:

* counters: what each series gained since the previous status, and a series the child
  created since at what it gained, 0 too: a series the child sets up at zero (the input
  loss counters: `CeasefireInputLost` pages on their first increase) is in the worker's
  `/metrics` from the first status, not only once it has grown, which Prometheus would
  take for its start and see no increase in;
* histograms: what each bucket and the sum gained (a child's observations are counted in
  the worker's histogram as if observed there);
* gauges: every series the child holds now, by value; a series the child no longer holds
  leaves the worker's gauge (a partition it gave up), and all of them when the child is
  gone (`MetricMirror.clear`).

A restarted child starts from zero and sends what it gained since: the worker's counters
go on from where they were, never backwards. What a killed child counted after its last
status (at most a tenth of a second of work) is lost with it, as a killed process's own
counters would be; the state it wrote is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

Labels = tuple[str, ...]


@dataclass
class Changes:
    """What the child's metrics did since its previous status, by metric name."""

    #: counter -> label values -> increase
    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    #: histogram -> label values -> (increase of each bucket, not cumulative; of the sum)
    histograms: dict[str, dict[Labels, tuple[list[float], float]]] = field(default_factory=dict)
    #: gauge -> every series the child holds -> value
    gauges: dict[str, dict[Labels, float]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        """Whether there is anything to send now: a series new to the worker, at 0, too."""
        return any(self.counters.values()) or any(self.histograms.values())


def _name(metric: MetricWrapperBase) -> str:
    return metric._name  # type: ignore[attr-defined, no-any-return]


def _children(metric: MetricWrapperBase) -> Iterable[tuple[Labels, MetricWrapperBase]]:
    """(label values, child) of each series; an unlabelled metric is its own series."""
    if not metric._labelnames:  # type: ignore[attr-defined]
        return [((), metric)]
    with metric._lock:  # type: ignore[attr-defined]
        return [(tuple(k), v) for k, v in metric._metrics.items()]  # type: ignore[attr-defined]


def _labelled(metric: MetricWrapperBase, labels: Labels) -> MetricWrapperBase:
    return metric.labels(*labels) if labels else metric


class MetricRelay:
    """The child's side: what `metrics` did since the last call of `changes`."""

    def __init__(self, metrics: Sequence[MetricWrapperBase]) -> None:
        self.metrics = list(metrics)
        self._counted: dict[tuple[str, Labels], float] = {}
        self._buckets: dict[tuple[str, Labels], tuple[list[float], float]] = {}

    def changes(self) -> Changes:
        out = Changes()
        for metric in self.metrics:
            name = _name(metric)
            if isinstance(metric, Counter):
                gained: dict[Labels, float] = {}
                for labels, child in _children(metric):
                    value = child._value.get()  # type: ignore[attr-defined]
                    counted = self._counted.get((name, labels))
                    if counted is None or value != counted:
                        gained[labels] = value - (counted or 0.0)
                        self._counted[(name, labels)] = value
                out.counters[name] = gained
            elif isinstance(metric, Histogram):
                grown: dict[Labels, tuple[list[float], float]] = {}
                for labels, child in _children(metric):
                    buckets = [b.get() for b in child._buckets]  # type: ignore[attr-defined]
                    total = child._sum.get()  # type: ignore[attr-defined]
                    known = self._buckets.get((name, labels))
                    before, before_sum = known or ([], 0.0)
                    if known is None or buckets != before or total != before_sum:
                        old = before or [0.0] * len(buckets)
                        grown[labels] = (
                            [n - o for n, o in zip(buckets, old, strict=True)],
                            total - before_sum,
                        )
                        self._buckets[(name, labels)] = (buckets, total)
                out.histograms[name] = grown
            elif isinstance(metric, Gauge):
                out.gauges[name] = {
                    labels: child._value.get()  # type: ignore[attr-defined]
                    for labels, child in _children(metric)
                }
        return out


class MetricMirror:
    """The worker's side: applies a child's `Changes` to the worker's metric objects."""

    def __init__(self, metrics: Sequence[MetricWrapperBase]) -> None:
        self.by_name = {_name(m): m for m in metrics}
        #: gauge series this mirror set (and so may remove): one child's never clear
        #: another's, nor the worker's own
        self._gauges: dict[str, set[Labels]] = {}

    def apply(self, changes: Changes) -> None:
        for name, series in changes.counters.items():
            metric = self.by_name[name]
            for labels, delta in series.items():
                _labelled(metric, labels).inc(delta)  # type: ignore[attr-defined]
        for name, grown in changes.histograms.items():
            metric = self.by_name[name]
            for labels, (buckets, total) in grown.items():
                child = _labelled(metric, labels)
                # observe() has no bulk form: add to the buckets it would have counted in
                for bucket, n in zip(child._buckets, buckets, strict=True):  # type: ignore[attr-defined]
                    if n:
                        bucket.inc(n)
                child._sum.inc(total)  # type: ignore[attr-defined]
        for name, values in changes.gauges.items():
            self._mirror(name, values)

    def clear(self) -> None:
        """The child is gone: its gauge series leave the worker's."""
        for name in list(self._gauges):
            self._mirror(name, {})

    def _mirror(self, name: str, values: dict[Labels, float]) -> None:
        metric = self.by_name[name]
        held = self._gauges.get(name, set())
        for gone in held - values.keys():
            if gone:
                metric.remove(*gone)
        for labels, value in values.items():
            _labelled(metric, labels).set(value)  # type: ignore[attr-defined]
        self._gauges[name] = set(values)
