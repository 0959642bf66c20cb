"""
Tests for L{linkrouter.policy.backoff}.
"""

from itertools import islice, pairwise
from random import Random

from twisted.trial.unittest import SynchronousTestCase

from linkrouter.policy.backoff import constant, jittered


class ConstantTests(SynchronousTestCase):
    def test_sameDelayForever(self) -> None:
        self.assertEqual(list(islice(constant(250), 1000))[-3:], [0.25, 0.25, 0.25])

    def test_zero(self) -> None:
        self.assertEqual(next(constant(0)), 0.0)

    def test_negative(self) -> None:
        self.assertRaises(ValueError, constant, -1)


class JitteredTests(SynchronousTestCase):
    def test_startsAtMinimum(self) -> None:
        self.assertEqual(next(jittered(10, 10000, Random(1))), 0.01)

    def test_decorrelated(self) -> None:
        """
        Each delay lies between the minimum and three times the previous
        delay, capped at the maximum; the cap is reached and kept under.
        """
        delays = list(islice(jittered(10, 1000, Random(7)), 500))
        for previous, current in pairwise(delays):
            self.assertGreaterEqual(current, 0.01)
            self.assertLessEqual(current, min(previous * 3, 1.0))
        self.assertGreater(max(delays), 0.5)

    def test_injectedRandomIsReproducible(self) -> None:
        a = list(islice(jittered(5, 500, Random(3)), 20))
        b = list(islice(jittered(5, 500, Random(3)), 20))
        self.assertEqual(a, b)
        self.assertGreater(len(set(a)), 10)

    def test_drawsFromRange(self) -> None:
        """
        The second delay is drawn uniformly in C{[min, min(3 * min, max)]}.
        """

        class Recorder(Random):
            ranges: list[tuple[float, float]] = []

            def uniform(self, a: float, b: float) -> float:
                self.ranges.append((a, b))
                return b

        rng = Recorder()
        delays = list(islice(jittered(10, 100, rng), 4))
        self.assertEqual(rng.ranges, [(10, 30), (10, 90), (10, 100)])
        self.assertEqual(delays, [0.01, 0.03, 0.09, 0.1])

    def test_equalBounds(self) -> None:
        self.assertEqual(list(islice(jittered(20, 20, Random(0)), 3)), [0.02] * 3)

    def test_badBounds(self) -> None:
        self.assertRaises(ValueError, jittered, 100, 10)
        self.assertRaises(ValueError, jittered, -1, 10)
