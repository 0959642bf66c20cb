# -*- test-case-name: tests.test_telemetry_stats -*-
"""
The metrics registry: counters, gauges and windowed histograms.

Every metric is keyed by a tuple of name segments (C{("rt", "http",
"server", "127.0.0.1/4140", "requests")}); the flat Finagle name joins them
with C{/}.  Keeping the segments lets the exporters turn some of them into
labels (C{server="127.0.0.1/4140"}) exactly where Linkerd does.

Recording is on the data path and costs one attribute update for a counter
and a C{bisect} plus a few attribute updates for a histogram: no locks (all
recording happens on the reactor thread), no clock reads and no sorting.
Histograms are bucketed (Finagle-style log-linear buckets with a relative
error below one percent) and windowed: L{MetricsRegistry.snapshot}, called
every C{windowSeconds} by L{MetricsRegistry.service}, swaps each
histogram's buckets for empty ones in O(1).  Readers only ever see the
frozen previous window, summarised lazily on first read, so reading never
slows writers.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeAlias

import attrs
from twisted.application.internet import TimerService
from twisted.application.service import IService
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from linkrouter.interfaces import ICounter, IGauge, IHistogram, IStatsReceiver
from linkrouter.logs import logObserver

Names: TypeAlias = tuple[str, ...]
Number: TypeAlias = int | float

_log = Logger(observer=logObserver)


def _bucketLimits(growth: float = 1.01, top: int = 2**31) -> list[int]:
    """
    Lower bounds of the histogram buckets: one per integer up to 100, then
    each bucket C{growth} times wider than the last, so that a bucket's
    midpoint is within C{(growth - 1) / 2} of every value in it.
    """
    limits = [0]
    while limits[-1] < top:
        last = limits[-1]
        limits.append(max(last + 1, math.ceil(last * growth)))
    return limits


_LIMITS: list[int] = _bucketLimits()
"""
Bucket C{i} holds values in C{[_LIMITS[i - 1], _LIMITS[i])}; bucket 0 holds
negative values and bucket C{len(_LIMITS)} values from 2**31 up.
"""

_EXACT: int = next(i for i, limit in enumerate(_LIMITS) if limit != i)
"""Below this, bucket C{i + 1} holds exactly the values in C{[i, i + 1)}."""

QUANTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.5),
    ("p90", 0.9),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p9990", 0.999),
    ("p9999", 0.9999),
)
"""Suffix and quantile of each percentile every exporter reports."""


@implementer(ICounter)
class Counter:
    """
    A monotonically increasing count.  C{value} is read at export.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Number = 0

    def incr(self, delta: int = 1) -> None:
        self.value += delta


@attrs.frozen
class HistogramSummary:
    """
    What one window of a histogram looked like.  Quantiles are bucket
    midpoints clamped to C{[min, max]}; C{min}, C{max} and C{sum} are exact.
    With C{count == 0} every other field is C{0}.
    """

    count: int
    sum: Number
    min: Number
    max: Number
    p50: Number
    p90: Number
    p95: Number
    p99: Number
    p9990: Number
    p9999: Number

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def stats(self) -> list[tuple[str, Number]]:
        """
        C{(suffix, value)} pairs in Linkerd's C{metrics.json} order:
        count, max, min, the percentiles, sum, avg.  Only C{count} when the
        window was empty.
        """
        if not self.count:
            return [("count", 0)]
        return [
            ("count", self.count),
            ("max", self.max),
            ("min", self.min),
            *((name, getattr(self, name)) for name, _ in QUANTILES),
            ("sum", self.sum),
            ("avg", self.avg),
        ]


_EMPTY_SUMMARY = HistogramSummary(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def _summarize(
    counts: dict[int, int], total: Number, low: Number, high: Number
) -> HistogramSummary:
    count = sum(counts.values())
    if not count:
        return _EMPTY_SUMMARY
    # Rank of each quantile: the smallest value with at least q * count
    # observations at or below it (the tiny epsilon keeps 0.9 * 10 at 9).
    wanted = [(name, max(1, math.ceil(q * count - 1e-9))) for name, q in QUANTILES]
    found: dict[str, Number] = {}
    seen = 0
    top = len(_LIMITS)
    for index in sorted(counts):
        seen += counts[index]
        while wanted and wanted[0][1] <= seen:
            if index == 0:
                value: Number = low
            elif index == top:
                value = high
            else:
                lo, hi = _LIMITS[index - 1], _LIMITS[index]
                value = (lo + hi - 1) // 2
            found[wanted.pop(0)[0]] = min(max(value, low), high)
        if not wanted:
            break
    return HistogramSummary(count=count, sum=total, min=low, max=high, **found)


@implementer(IHistogram)
class Histogram:
    """
    A windowed, bucketed distribution of observations.

    C{add} records into the current window.  L{snapshot} closes the window;
    L{summary} describes the last closed window (C{None} before the first
    snapshot).
    """

    __slots__ = ("_counts", "_frozen", "_max", "_min", "_sum", "_summary")

    def __init__(self) -> None:
        self._counts: defaultdict[int, int] = defaultdict(int)
        self._sum: Number = 0
        self._min: Number = math.inf
        self._max: Number = -math.inf
        self._frozen: tuple[dict[int, int], Number, Number, Number] | None = None
        self._summary: HistogramSummary | None = None

    def add(
        self,
        value: float,
        _bucket: Callable[[list[int], float], int] = bisect_right,
        _limits: list[int] = _LIMITS,
    ) -> None:
        # The defaults bind the bucket search as locals: this is the hot path.
        # Below _EXACT the buckets are one unit wide, so the bucket is the
        # value's integer part plus one, without a search.
        self._counts[int(value) + 1 if 0 <= value < _EXACT else _bucket(_limits, value)] += 1
        self._sum += value
        if value > self._max:
            self._max = value
        if value < self._min:
            self._min = value

    def snapshot(self) -> None:
        """
        Close the current window: it becomes what L{summary} describes, and
        recording starts again from empty.
        """
        self._frozen = (self._counts, self._sum, self._min, self._max)
        self._summary = None
        self._counts = defaultdict(int)
        self._sum = 0
        self._min = math.inf
        self._max = -math.inf

    def summary(self) -> HistogramSummary | None:
        """
        The last closed window, summarised on first read and cached.
        """
        if self._summary is None and self._frozen is not None:
            self._summary = _summarize(*self._frozen)
        return self._summary


Metric: TypeAlias = "Counter | Histogram | Gauge"


@implementer(IGauge)
class Gauge:
    """
    A value computed by C{fn} whenever metrics are exported.
    """

    __slots__ = ("_names", "_registry", "fn")

    def __init__(self, registry: MetricsRegistry, names: Names, fn: Callable[[], float]) -> None:
        self._registry = registry
        self._names = names
        self.fn = fn

    def read(self) -> Number | None:
        """
        C{fn()}, or C{None} (logged) if it raised or returned a non-number.
        """
        try:
            value = self.fn()
        except Exception as e:
            _log.warn("gauge {name} failed: {error}", name="/".join(self._names), error=repr(e))
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            _log.warn("gauge {name} returned {value!r}", name="/".join(self._names), value=value)
            return None
        return value

    def remove(self) -> None:
        self._registry._removeMetric(self._names, self)


def _segments(names: Sequence[str]) -> Names:
    return tuple(n for n in names if n)


def _clean(names: Sequence[str]) -> Names:
    key = _segments(names)
    if not key:
        raise ValueError("a metric needs a name")
    return key


class MetricsRegistry:
    """
    Every metric of the process, keyed by name segments.

    @param clock: drives the histogram windows (see L{service}).
    @param windowSeconds: length of a histogram window (Linkerd: one minute).
    """

    def __init__(self, clock: IReactorTime | None = None, windowSeconds: float = 60.0) -> None:
        self.clock = clock
        self.windowSeconds = windowSeconds
        self._metrics: dict[Names, Metric] = {}
        self._histograms: dict[Names, Histogram] = {}

    def _get(self, names: Names, kind: type[Counter] | type[Histogram]) -> Counter | Histogram:
        existing = self._metrics.get(names)
        if isinstance(existing, kind):
            return existing
        metric = kind()
        if existing is not None:
            # A programming mistake, but never worth failing a request over:
            # the new metric works, it is just not exported.
            _log.error(
                "metric {name} is already a {existing}; not exporting the new {kind}",
                name="/".join(names),
                existing=type(existing).__name__.lower(),
                kind=kind.__name__.lower(),
            )
            return metric
        self._metrics[names] = metric
        if isinstance(metric, Histogram):
            self._histograms[names] = metric
        return metric

    def counter(self, names: Sequence[str]) -> Counter:
        """The counter called C{names}, created on first use."""
        metric = self._get(_clean(names), Counter)
        assert isinstance(metric, Counter)
        return metric

    def histogram(self, names: Sequence[str]) -> Histogram:
        """The histogram called C{names}, created on first use."""
        metric = self._get(_clean(names), Histogram)
        assert isinstance(metric, Histogram)
        return metric

    def addGauge(self, names: Sequence[str], fn: Callable[[], float]) -> Gauge:
        """
        Export C{fn()} as C{names}, replacing any gauge of that name, until
        the returned gauge's C{remove()}.
        """
        key = _clean(names)
        gauge = Gauge(self, key, fn)
        existing = self._metrics.get(key)
        if existing is None or isinstance(existing, Gauge):
            self._metrics[key] = gauge
        else:
            _log.error(
                "metric {name} is already a {existing}; not exporting the gauge",
                name="/".join(key),
                existing=type(existing).__name__.lower(),
            )
        return gauge

    def _removeMetric(self, names: Names, metric: Metric) -> None:
        if self._metrics.get(names) is metric:
            del self._metrics[names]
            self._histograms.pop(names, None)

    def remove(self, prefix: Sequence[str]) -> int:
        """
        Stop exporting every metric whose name starts with C{prefix} (for
        example an evicted client's scope).  Handles already given out keep
        working but are no longer exported; asking for the name again
        creates a fresh metric.

        @return: how many metrics were removed.
        """
        key = _segments(prefix)
        n = len(key)
        doomed = [names for names in self._metrics if names[:n] == key]
        for names in doomed:
            del self._metrics[names]
            self._histograms.pop(names, None)
        return len(doomed)

    def items(self) -> list[tuple[Names, Metric]]:
        """
        A copy of C{(names, metric)} in creation order, for exporters.
        """
        return list(self._metrics.items())

    def __len__(self) -> int:
        return len(self._metrics)

    def snapshot(self) -> None:
        """Close the current window of every histogram."""
        for histogram in list(self._histograms.values()):
            histogram.snapshot()

    def service(self) -> IService:
        """
        A service that calls L{snapshot} every C{windowSeconds} on C{clock}
        (and once as it starts, closing the empty window before it).
        """
        service = TimerService(self.windowSeconds, self.snapshot)
        if self.clock is not None:
            service.clock = self.clock
        return service

    def statsReceiver(self) -> StatsReceiver:
        """The root L{StatsReceiver} recording into this registry."""
        return StatsReceiver(self, ())


@implementer(IStatsReceiver)
class StatsReceiver:
    """
    Records into a L{MetricsRegistry} under a name prefix.  Empty name
    segments are ignored, as in Finagle.
    """

    __slots__ = ("prefix", "registry")

    def __init__(self, registry: MetricsRegistry, prefix: Names) -> None:
        self.registry = registry
        self.prefix = prefix

    def scope(self, *names: str) -> StatsReceiver:
        return StatsReceiver(self.registry, self.prefix + _segments(names))

    def counter(self, *names: str) -> Counter:
        return self.registry.counter(self.prefix + names)

    def histogram(self, *names: str) -> Histogram:
        return self.registry.histogram(self.prefix + names)

    def addGauge(self, name: tuple[str, ...], fn: object) -> Gauge:
        if not callable(fn):
            raise TypeError(f"gauge function must be callable, not {fn!r}")
        return self.registry.addGauge(self.prefix + name, fn)

    def close(self) -> int:
        """
        Stop exporting every metric under this scope (cardinality control
        when a client or service is evicted); see L{MetricsRegistry.remove}.
        """
        return self.registry.remove(self.prefix)


@implementer(ICounter)
class _NullCounter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Number = 0  # counted, never read

    def incr(self, delta: int = 1) -> None:
        pass


@implementer(IHistogram)
class _NullHistogram:
    def add(self, value: float) -> None:
        pass


@implementer(IGauge)
class _NullGauge:
    def remove(self) -> None:
        pass


@implementer(IStatsReceiver)
class NullStatsReceiver:
    """Records nothing (for tests and for code that is not observed)."""

    def scope(self, *names: str) -> NullStatsReceiver:
        return self

    def counter(self, *names: str) -> _NullCounter:
        return _NullCounter()

    def histogram(self, *names: str) -> _NullHistogram:
        return _NullHistogram()

    def addGauge(self, name: tuple[str, ...], fn: object) -> _NullGauge:
        return _NullGauge()

    def close(self) -> int:
        return 0
