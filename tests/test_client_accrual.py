"""
Tests for L{linkrouter.client.accrual}, L{linkrouter.client.backoff} and the
parsing of C{failureAccrual} and C{loadBalancer} sections.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.client.accrual import (
    DEFAULT_ACCRUAL,
    DEFAULT_ACCRUAL_BACKOFF,
    AccrualConfig,
    AccrualFactory,
    ConsecutiveFailures,
    NoAccrual,
    SuccessRate,
    SuccessRateWindowed,
    parseAccrual,
)
from linkrouter.client.plugins import BalancerConfig, parseBalancer
from linkrouter.config import Backoff, Document, Section
from linkrouter.policy.backoff import fromConfig

CONSTANT = Backoff("constant", 2000, 2000)


def section(text: str) -> tuple[Section, Document]:
    document = Document("test.yaml", PluginRegistry.fromProviders([]))
    loaded = document.load(text)
    assert loaded is not None
    return loaded, document


def parsed(parse: Any, kind: str, text: str) -> tuple[Any, list[str]]:
    s, document = section(text)
    value = parse(kind, s)
    try:
        document.finish()
    except Exception:
        pass
    return value, [f"{p.path}: {p.message}" for p in document.problems]


class BackoffTests(SynchronousTestCase):
    def test_constant(self) -> None:
        stream = fromConfig(CONSTANT, random.Random(1))
        self.assertEqual([next(stream) for _ in range(3)], [2.0, 2.0, 2.0])

    def test_jittered(self) -> None:
        """Decorrelated jitter starts at the minimum and stays in bounds."""
        stream = fromConfig(DEFAULT_ACCRUAL_BACKOFF, random.Random(1))
        delays = [next(stream) for _ in range(200)]
        self.assertEqual(delays[0], 5.0)
        self.assertTrue(all(5.0 <= d <= 300.0 for d in delays))
        self.assertGreater(max(delays), 250.0)
        self.assertGreater(len(set(delays)), 50)


class PolicyTests(SynchronousTestCase):
    def test_consecutiveFailures(self) -> None:
        p = ConsecutiveFailures(3, CONSTANT, random.Random(1))
        self.assertEqual([p.recordFailure(), p.recordFailure()], [False, False])
        p.recordSuccess()
        self.assertEqual([p.recordFailure() for _ in range(3)], [False, False, True])
        self.assertEqual(p.nextBackoff(), 2.0)
        p.revived()
        self.assertFalse(p.recordFailure())

    def test_backoffRestartsOnRevival(self) -> None:
        p = ConsecutiveFailures(1, Backoff("jittered", 1000, 60000), random.Random(4))
        first = [p.nextBackoff() for _ in range(5)]
        self.assertEqual(first[0], 1.0)
        self.assertGreater(max(first), 1.0)
        p.revived()
        self.assertEqual(p.nextBackoff(), 1.0)

    def test_successRate(self) -> None:
        """
        Judged only after C{requests} observations; then below the required
        rate means dead.
        """
        p = SuccessRate(0.9, 10, CONSTANT, random.Random(1))
        for _ in range(8):
            self.assertFalse(p.recordFailure())
        self.assertFalse(p.recordFailure())
        self.assertTrue(p.recordFailure())
        p.revived()
        self.assertFalse(p.recordFailure())
        p = SuccessRate(0.9, 100, CONSTANT, random.Random(1))
        for _ in range(200):
            p.recordSuccess()
        # One failure in a healthy window is fine.
        self.assertFalse(p.recordFailure())
        for _ in range(30):
            p.recordSuccess()
            if p.recordFailure():
                break
        else:
            self.fail("a 50% success rate was never judged dead")

    def test_successRateWindowed(self) -> None:
        """Judged only once a whole window has passed; decays with time."""
        clock = Clock()
        p = SuccessRateWindowed(0.9, 5, clock, CONSTANT, random.Random(1))
        for _ in range(4):
            self.assertFalse(p.recordFailure())
            clock.advance(1)
        clock.advance(1)
        self.assertTrue(p.recordFailure())
        p.revived()
        for _ in range(50):
            p.recordSuccess()
            clock.advance(0.1)
        self.assertFalse(p.recordFailure())
        clock.advance(30)
        self.assertTrue(p.recordFailure())

    def test_none(self) -> None:
        p = NoAccrual()
        self.assertFalse(any(p.recordFailure() for _ in range(100)))

    def test_factory(self) -> None:
        clock = Clock()
        for config, cls in [
            (DEFAULT_ACCRUAL, ConsecutiveFailures),
            (AccrualConfig("io.l5d.successRate", successRate=0.5, requests=3), SuccessRate),
            (
                AccrualConfig("io.l5d.successRateWindowed", successRate=0.5, window=3),
                SuccessRateWindowed,
            ),
            (AccrualConfig("none"), NoAccrual),
        ]:
            factory = AccrualFactory(config, clock)
            self.assertIsInstance(factory(), cls)
            self.assertIsNot(factory(), factory())
            self.assertEqual(factory.maxEjectionPercent, 50)


class ParseAccrualTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        value, problems = parsed(parseAccrual, "io.l5d.consecutiveFailures", "{}")
        self.assertEqual(problems, [])
        self.assertEqual(value, DEFAULT_ACCRUAL)
        self.assertEqual(value.backoff, Backoff("jittered", 5000, 300000))

    def test_everything(self) -> None:
        value, problems = parsed(
            parseAccrual,
            "io.l5d.successRate",
            "successRate: 0.9\nrequests: 1000\nmaxEjectionPercent: 30\n"
            "backoff: {kind: constant, ms: 10000}\n",
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            value,
            AccrualConfig(
                "io.l5d.successRate",
                successRate=0.9,
                requests=1000,
                maxEjectionPercent=30,
                backoff=Backoff("constant", 10000, 10000),
            ),
        )
        value, problems = parsed(
            parseAccrual, "io.l5d.successRateWindowed", "successRate: 0.5\nwindow: 30\n"
        )
        self.assertEqual((value.window, value.successRate, problems), (30, 0.5, []))

    def test_required(self) -> None:
        _, problems = parsed(parseAccrual, "io.l5d.successRate", "{requests: 10}")
        self.assertEqual(problems, ["successRate: required key is missing"])
        _, problems = parsed(parseAccrual, "io.l5d.successRateWindowed", "{successRate: 0.9}")
        self.assertEqual(problems, ["window: required key is missing"])

    def test_badValues(self) -> None:
        _, problems = parsed(
            parseAccrual,
            "io.l5d.consecutiveFailures",
            "failures: 0\nmaxEjectionPercent: 150\nbackoff: {kind: jittered, minMs: 9, maxMs: 1}\n",
        )
        self.assertEqual(
            sorted(problems),
            [
                "backoff.minMs: minMs must not be greater than maxMs",
                "failures: must be at least 1, not 0",
                "maxEjectionPercent: must be between 0 and 100, not 150",
            ],
        )
        _, problems = parsed(parseAccrual, "io.l5d.successRate", "{successRate: 2, requests: 1}")
        self.assertEqual(problems, ["successRate: must be between 0.0 and 1.0, not 2"])
        _, problems = parsed(parseAccrual, "io.l5d.consecutiveFailures", "{failures: yes}")
        self.assertEqual(problems, ["failures: expected an integer, got a boolean"])

    def test_noneTakesNoKeys(self) -> None:
        _, problems = parsed(parseAccrual, "none", "{failures: 3}")
        self.assertEqual(len(problems), 1)
        self.assertIn("failures", problems[0])


class ParseBalancerTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        for kind in ("p2c", "ewma", "aperture", "heap", "roundRobin"):
            value, problems = parsed(parseBalancer, kind, "{}")
            self.assertEqual(problems, [])
            self.assertEqual(value, BalancerConfig(kind))

    def test_everything(self) -> None:
        value, problems = parsed(
            parseBalancer,
            "aperture",
            "maxEffort: 3\nenableProbation: true\nsmoothWindowMs: 1000\n"
            "lowLoad: 0.25\nhighLoad: 4\nminAperture: 2\n",
        )
        self.assertEqual(problems, [])
        self.assertEqual(value, BalancerConfig("aperture", 3, True, 10000, 1000, 0.25, 4, 2))
        value, problems = parsed(parseBalancer, "ewma", "decayTimeMs: 15000")
        self.assertEqual((value.decayTimeMs, problems), (15000, []))

    def test_kindSpecificKeys(self) -> None:
        """Keys of another kind are unknown."""
        _, problems = parsed(parseBalancer, "p2c", "decayTimeMs: 15000")
        self.assertEqual(len(problems), 1)
        self.assertIn("decayTimeMs", problems[0])

    def test_badValues(self) -> None:
        _, problems = parsed(
            parseBalancer, "aperture", "maxEffort: 0\nlowLoad: 3\nhighLoad: 1\nminAperture: -1"
        )
        self.assertEqual(
            sorted(problems),
            [
                "lowLoad: lowLoad (3) must be below highLoad (1)",
                "maxEffort: must be at least 1, not 0",
                "minAperture: must be at least 1, not -1",
            ],
        )
