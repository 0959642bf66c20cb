"""
Tests for L{linkrouter.policy.timeouts}.
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.policy.timeouts import (
    Deadline,
    DeadlineExceeded,
    RequestAttemptTimeout,
    RequestTimeout,
    TotalTimeout,
    outgoingDeadline,
    readDeadline,
    withTimeout,
)

S = 1_000_000_000


class WithTimeoutTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.cancelled: list[Deferred[str]] = []
        self.d: Deferred[str] = Deferred(self.cancelled.append)

    def test_fires(self) -> None:
        withTimeout(self.d, 1.0, self.clock)
        self.d.callback("ok")
        self.assertEqual(self.successResultOf(self.d), "ok")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timesOut(self) -> None:
        """
        When the time is up the Deferred is cancelled (its owner sees the
        cancellation) and fails with the given error naming the limit.
        """
        withTimeout(self.d, 0.1, self.clock, TotalTimeout)
        self.clock.advance(0.1)
        self.assertEqual(self.cancelled, [self.d])
        f = self.failureResultOf(self.d, TotalTimeout)
        self.assertEqual(str(f.value), "total timeout of 100 ms exceeded")
        self.assertEqual(f.value.seconds, 0.1)

    def test_defaultError(self) -> None:
        withTimeout(self.d, 1, self.clock)
        self.clock.advance(1)
        self.failureResultOf(self.d, RequestAttemptTimeout)

    def test_callerCancel(self) -> None:
        withTimeout(self.d, 1, self.clock)
        self.d.cancel()
        self.failureResultOf(self.d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_otherFailurePasses(self) -> None:
        withTimeout(self.d, 1, self.clock)
        self.d.errback(ValueError("boom"))
        self.failureResultOf(self.d, ValueError)

    def test_attemptAndTotal(self) -> None:
        """
        An attempt timeout shorter than the total fires first; the total
        still bounds the whole.
        """
        total: Deferred[str] = Deferred()
        withTimeout(self.d, 0.1, self.clock, RequestAttemptTimeout)
        withTimeout(total, 0.25, self.clock, TotalTimeout)
        self.clock.advance(0.1)
        self.failureResultOf(self.d, RequestAttemptTimeout)
        self.assertNoResult(total)
        self.clock.advance(0.15)
        self.failureResultOf(total, TotalTimeout)

    def test_allAreRequestTimeouts(self) -> None:
        for kind in (RequestAttemptTimeout, TotalTimeout, DeadlineExceeded):
            self.assertTrue(issubclass(kind, RequestTimeout))


class DeadlineTests(SynchronousTestCase):
    def test_parseAndShow(self) -> None:
        d = Deadline.parse(b"1500000000000000000 1500000000050000000")
        self.assertEqual(d, Deadline(1500000000000000000, 1500000000050000000))
        self.assertEqual(d.show, "1500000000000000000 1500000000050000000")
        self.assertEqual(Deadline.parse(" 1 2 "), Deadline(1, 2))

    @given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
    def test_roundTrip(self, t: int, d: int) -> None:
        self.assertEqual(Deadline.parse(Deadline(t, d).show), Deadline(t, d))

    def test_malformed(self) -> None:
        for text in [b"", b"1", b"1  2", b"1 2 3", b"a b", b"-1 2", b"1,2", b"1" * 30 + b" 2"]:
            with self.subTest(text=text):
                self.assertRaises(ValueError, Deadline.parse, text)

    def test_ofTimeoutAndRemaining(self) -> None:
        clock = Clock()
        clock.advance(1000)
        d = Deadline.ofTimeout(0.05, clock)
        self.assertEqual(d, Deadline(1000 * S, 1000 * S + 50_000_000))
        self.assertAlmostEqual(d.remaining(clock), 0.05)
        self.assertFalse(d.expired(clock))
        clock.advance(0.05)
        self.assertTrue(d.expired(clock))

    def test_combined(self) -> None:
        self.assertEqual(Deadline(1, 10).combined(Deadline(2, 20)), Deadline(2, 10))

    def test_readDeadline(self) -> None:
        """
        Several header values combine into the strictest; malformed ones are
        ignored.
        """
        self.assertIsNone(readDeadline([]))
        self.assertIsNone(readDeadline([b"junk"]))
        self.assertEqual(readDeadline([b"1 30", b"junk", "2 20"]), Deadline(2, 20))

    def test_outgoing(self) -> None:
        """
        The outgoing deadline is the earlier of the caller's and now plus
        the total timeout.
        """
        clock = Clock()
        clock.advance(10)
        self.assertIsNone(outgoingDeadline(None, None, clock))
        self.assertEqual(outgoingDeadline(None, 1.0, clock), Deadline(10 * S, 11 * S))
        early = Deadline(9 * S, 10 * S + 50_000_000)
        self.assertEqual(outgoingDeadline(early, 1.0, clock), Deadline(10 * S, early.deadline))
        late = Deadline(9 * S, 20 * S)
        self.assertEqual(outgoingDeadline(late, 1.0, clock), Deadline(10 * S, 11 * S))
        self.assertEqual(outgoingDeadline(late, None, clock), late)
