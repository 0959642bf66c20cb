"""
Tests for L{linkrouter.telemetry.stats}: the registry, stats receivers and
windowed histograms.
"""

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from linkrouter.interfaces import ICounter, IGauge, IHistogram, IStatsReceiver
from linkrouter.telemetry import MetricsRegistry, NullStatsReceiver
from linkrouter.telemetry.stats import Histogram, HistogramSummary


def exactQuantile(values, q):
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered) - 1e-9))
    return ordered[rank - 1]


def summary(histogram: Histogram) -> HistogramSummary:
    result = histogram.summary()
    assert result is not None
    return result


class StatsReceiverTests(SynchronousTestCase):
    def setUp(self):
        self.registry = MetricsRegistry(Clock())
        self.stats = self.registry.statsReceiver()

    def flat(self):
        return {"/".join(names): metric for names, metric in self.registry.items()}

    def test_interfaces(self):
        verifyObject(IStatsReceiver, self.stats)
        verifyObject(IStatsReceiver, NullStatsReceiver())
        verifyObject(ICounter, self.stats.counter("c"))
        verifyObject(IHistogram, self.stats.histogram("h"))
        verifyObject(IGauge, self.stats.addGauge(("g",), lambda: 1.0))

    def test_scopedNames(self):
        """
        Scopes prefix names; segments keep their slashes (one segment
        C{127.0.0.1/4140}); empty segments are ignored.
        """
        server = self.stats.scope("rt", "http").scope("server", "127.0.0.1/4140", "")
        server.counter("requests").incr()
        server.counter("requests").incr(2)
        names = [names for names, _ in self.registry.items()]
        self.assertEqual(names, [("rt", "http", "server", "127.0.0.1/4140", "requests")])
        self.assertEqual(self.flat()["rt/http/server/127.0.0.1/4140/requests"].value, 3)

    def test_sameMetricReturned(self):
        self.assertIs(self.stats.counter("a", "b"), self.stats.scope("a").counter("b"))
        self.assertIs(self.stats.histogram("h"), self.stats.histogram("h"))

    def test_emptyNameRefused(self):
        self.assertRaises(ValueError, self.stats.counter)
        self.assertRaises(ValueError, self.stats.scope("").histogram, "")

    def test_kindConflictIsNotFatal(self):
        """
        Asking for a histogram where a counter lives gives a working
        histogram that is not exported, and logs why.
        """
        counter = self.stats.counter("x")
        histogram = self.stats.histogram("x")
        histogram.add(3)
        self.assertIs(self.flat()["x"], counter)
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_gauge(self):
        value = [1.5]
        gauge = self.stats.scope("pool").addGauge(("size",), lambda: value[0])
        self.assertEqual(self.flat()["pool/size"].read(), 1.5)
        value[0] = 7
        self.assertEqual(self.flat()["pool/size"].read(), 7)
        gauge.remove()
        self.assertNotIn("pool/size", self.flat())

    def test_gaugeReplaced(self):
        """
        A newer gauge of the same name replaces the older; removing the
        older then leaves the newer in place.
        """
        old = self.stats.addGauge(("g",), lambda: 1.0)
        self.stats.addGauge(("g",), lambda: 2.0)
        old.remove()
        self.assertEqual(self.flat()["g"].read(), 2.0)

    def test_gaugeFailureIsSkipped(self):
        self.stats.addGauge(("bad",), lambda: 1 / 0)
        self.stats.addGauge(("text",), lambda: "many")
        self.assertIsNone(self.flat()["bad"].read())
        self.assertIsNone(self.flat()["text"].read())

    def test_gaugeNotCallable(self):
        self.assertRaises(TypeError, self.stats.addGauge, ("g",), 3)

    def test_removePrefix(self):
        """
        L{MetricsRegistry.remove} and L{StatsReceiver.close} drop a whole
        scope; old handles keep working unexported; the name can be
        created afresh.
        """
        client = self.stats.scope("rt", "http", "client", "$/inet/127.1/9990")
        old = client.counter("requests")
        client.histogram("latency").add(1)
        self.stats.counter("rt", "http", "client", "$/inet/127.1/9991", "requests").incr()
        self.assertEqual(client.close(), 2)
        self.assertEqual(list(self.flat()), ["rt/http/client/$/inet/127.1/9991/requests"])
        old.incr()
        self.assertIsNot(client.counter("requests"), old)
        self.assertEqual(self.registry.remove(("rt",)), 2)
        self.assertEqual(len(self.registry), 0)

    def test_nullStatsReceiver(self):
        stats = NullStatsReceiver().scope("a")
        stats.counter("c").incr()
        stats.histogram("h").add(1)
        stats.addGauge(("g",), lambda: 1.0).remove()
        self.assertEqual(stats.close(), 0)


class HistogramTests(SynchronousTestCase):
    def test_noSummaryBeforeFirstWindow(self):
        histogram = Histogram()
        histogram.add(1)
        self.assertIsNone(histogram.summary())

    def test_linkerdExample(self):
        """
        Linkerd's examples: one value 1, then values 1 and 2.
        """
        histogram = Histogram()
        histogram.add(1)
        histogram.snapshot()
        s = summary(histogram)
        self.assertEqual(
            (s.count, s.min, s.max, s.sum, s.avg, s.p50, s.p9999), (1, 1, 1, 1, 1.0, 1, 1)
        )
        histogram.add(1)
        histogram.add(2)
        histogram.snapshot()
        s = summary(histogram)
        self.assertEqual((s.count, s.min, s.max, s.sum, s.avg), (2, 1, 2, 3, 1.5))
        self.assertEqual((s.p50, s.p90, s.p99, s.p9990), (1, 2, 2, 2))

    def test_emptyWindow(self):
        histogram = Histogram()
        histogram.snapshot()
        self.assertEqual(summary(histogram).stats(), [("count", 0)])

    def test_windowsAreIndependent(self):
        histogram = Histogram()
        histogram.add(100)
        histogram.snapshot()
        histogram.add(5)
        self.assertEqual(summary(histogram).max, 100)
        histogram.snapshot()
        self.assertEqual((summary(histogram).max, summary(histogram).count), (5, 1))

    def test_extremes(self):
        """
        Negative values, fractions and values beyond the top bucket are
        counted and bound min/max exactly; quantiles have integer
        resolution, as in Finagle.
        """
        histogram = Histogram()
        for v in (-5, 0.25, 2**40):
            histogram.add(v)
        histogram.snapshot()
        s = summary(histogram)
        self.assertEqual((s.min, s.max, s.count), (-5, 2**40, 3))
        self.assertEqual((s.p50, s.p9999), (0, 2**40))

    def test_accuracyLatencies(self):
        """
        On a skewed latency-like sample every quantile is within 1% of the
        exact one.
        """
        rng = random.Random(42)
        values = [int(rng.lognormvariate(4, 1.2)) + 1 for _ in range(20000)]
        histogram = Histogram()
        for v in values:
            histogram.add(v)
        histogram.snapshot()
        s = summary(histogram)
        for name, q in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p9990", 0.999)]:
            exact = exactQuantile(values, q)
            self.assertLessEqual(abs(getattr(s, name) - exact), exact * 0.01 + 0.5, name)
        self.assertEqual(s.sum, sum(values))

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=300))
    def test_accuracyProperty(self, values):
        """
        Any quantile of integer data is within 1% (plus rounding) of the
        exact quantile, and within [min, max].
        """
        histogram = Histogram()
        for v in values:
            histogram.add(v)
        histogram.snapshot()
        s = summary(histogram)
        for name, q in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p9999", 0.9999)]:
            got, exact = getattr(s, name), exactQuantile(values, q)
            self.assertLessEqual(abs(got - exact), exact * 0.01 + 1, (name, got, exact))
            self.assertTrue(min(values) <= got <= max(values))

    @settings(max_examples=300, deadline=None)
    @given(
        st.one_of(
            st.floats(allow_nan=False, min_value=-10, max_value=300),
            st.integers(min_value=-10, max_value=2**32),
        )
    )
    def test_bucketShortcut(self, value):
        """
        The shortcut for small values files every value in the bucket that
        a search of the bucket limits finds.
        """
        from bisect import bisect_right

        from linkrouter.telemetry.stats import _LIMITS

        histogram = Histogram()
        histogram.add(value)
        self.assertEqual(list(histogram._counts), [bisect_right(_LIMITS, value)])


class WindowServiceTests(SynchronousTestCase):
    def test_snapshotsEveryWindow(self):
        clock = Clock()
        registry = MetricsRegistry(clock, windowSeconds=60)
        histogram = registry.statsReceiver().histogram("latency")
        service = registry.service()
        service.startService()
        histogram.add(10)
        clock.advance(59)
        self.assertEqual(summary(histogram).count, 0)
        clock.advance(1)
        self.assertEqual(summary(histogram).count, 1)
        clock.advance(60)
        self.assertEqual(summary(histogram).count, 0)
        service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
