"""
Tests for L{linkrouter.policy.retries.RetryingClient}, with a fake clock, a
scripted client and the real retry budget.
"""

from random import Random

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from linkrouter.client.budget import RetryBudget
from linkrouter.interfaces import IClient, Status
from linkrouter.policy.backoff import constant, jittered
from linkrouter.policy.classifiers import retryableAll5XX, retryableRead5XX
from linkrouter.policy.retries import RetryingClient
from linkrouter.policy.timeouts import (
    Deadline,
    DeadlineExceeded,
    RequestAttemptTimeout,
    TotalTimeout,
    withTimeout,
)
from linkrouter.telemetry.stats import MetricsRegistry
from protocols.http.message import Request, Response

S = 1_000_000_000


@implementer(IClient)
class ScriptedClient:
    """
    Answers each request with the next scripted item: a status (answered at
    once), C{None} (a Deferred that never fires unless cancelled), or an
    exception.  Records requests and cancellations.
    """

    status = Status.OPEN

    def __init__(self, script, clock=None, attemptTimeout=None):
        self.script = list(script)
        self.requests = []
        self.cancelled = 0
        self.closed = False
        self.clock = clock
        self.attemptTimeout = attemptTimeout

    def __call__(self, request):
        self.requests.append(request)
        item = self.script.pop(0) if self.script else 200
        if isinstance(item, Exception):
            raise item
        if item is None:
            d: Deferred[Response] = Deferred(lambda _: self._cancelled())
            if self.attemptTimeout is not None:
                withTimeout(d, self.attemptTimeout, self.clock)
            return d
        return succeed(Response(item))

    def _cancelled(self):
        self.cancelled += 1

    def close(self):
        self.closed = True
        return succeed(None)


class RetryHarness:
    """A retrying client over a scripted endpoint, with clock and metrics."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.registry = MetricsRegistry()
        self.stats = self.registry.statsReceiver().scope("svc")
        self.discarded: list[Response] = []
        self.stamped: list[Deadline] = []

    def make(
        self,
        script,
        classifier=retryableRead5XX,
        budget=None,
        backoff=lambda: constant(10),
        totalTimeout=None,
        mayResend=lambda r: True,
        attemptTimeout=None,
    ):
        self.client = ScriptedClient(script, self.clock, attemptTimeout)
        self.budget = budget or RetryBudget(10, 10, 0.2, self.clock)
        return RetryingClient(
            self.client,
            classifier=classifier.build(None, None),
            budget=self.budget,
            backoff=backoff,
            clock=self.clock,
            stats=self.stats,
            totalTimeout=totalTimeout,
            mayResend=mayResend,
            stampDeadline=lambda req, d: self.stamped.append(d),
            discard=self.discarded.append,
        )

    def counter(self, *names):
        return self.registry.counter(("svc", *names)).value

    def perRequest(self):
        self.registry.snapshot()
        summary = self.registry.histogram(("svc", "retries", "per_request")).summary()
        assert summary is not None
        return (summary.count, summary.sum)


class RetryingClientTests(RetryHarness, SynchronousTestCase):
    def test_interface(self) -> None:
        self.assertTrue(verifyObject(IClient, self.make([])))

    def test_success(self) -> None:
        c = self.make([200])
        d = c(Request(b"GET", b"/"))
        self.assertEqual(self.successResultOf(d).status, 200)
        self.assertEqual(len(self.client.requests), 1)
        self.assertEqual(self.perRequest(), (1, 0))
        self.assertEqual(self.counter("retries", "total"), 0)

    def test_retryAfterBackoff(self) -> None:
        """
        A retryable failure is re-sent after the backoff delay; the replaced
        response is discarded.
        """
        c = self.make([503, 200])
        d = c(Request(b"GET", b"/"))
        self.assertNoResult(d)
        self.clock.advance(0.009)
        self.assertEqual(len(self.client.requests), 1)
        self.clock.advance(0.001)
        self.assertEqual(self.successResultOf(d).status, 200)
        self.assertEqual(len(self.client.requests), 2)
        self.assertEqual([r.status for r in self.discarded], [503])
        self.assertEqual(self.counter("retries", "total"), 1)
        self.assertEqual(self.perRequest(), (1, 1))

    def test_notRetryableMethod(self) -> None:
        c = self.make([503, 200])
        d = c(Request(b"POST", b"/"))
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(len(self.client.requests), 1)

    def test_retryableAll(self) -> None:
        c = self.make([503, 200], classifier=retryableAll5XX, backoff=lambda: constant(0))
        d = c(Request(b"POST", b"/"))
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d).status, 200)

    def test_cannotResend(self) -> None:
        c = self.make([503, 200], mayResend=lambda r: False)
        d = c(Request(b"GET", b"/"))
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(len(self.client.requests), 1)

    def test_retryableException(self) -> None:
        """
        A connection failure raised synchronously is classified like any
        other outcome.
        """
        c = self.make([ConnectionLost(), 200])
        d = c(Request(b"GET", b"/"))
        self.clock.advance(0.01)
        self.assertEqual(self.successResultOf(d).status, 200)

    def test_lastFailureReturned(self) -> None:
        c = self.make([ConnectionLost(), ValueError("no")])
        d = c(Request(b"GET", b"/"))
        self.clock.advance(0.01)
        self.failureResultOf(d, ValueError)

    def test_budgetExhausted(self) -> None:
        """
        Without a reserve and with no deposits, no retry is allowed.
        """
        c = self.make([503, 200], budget=RetryBudget(10, 0, 0.0, self.clock))
        d = c(Request(b"GET", b"/"))
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(self.counter("retries", "budget_exhausted"), 1)
        self.assertEqual(self.counter("retries", "total"), 0)

    def test_budgetPercent(self) -> None:
        """
        Each request deposits C{percentCanRetry}: with 0.5 and no reserve,
        four requests pay for two retries, and a backend that always fails
        gets exactly six attempts.
        """
        c = self.make([503] * 100, budget=RetryBudget(10, 0, 0.5, self.clock))
        results = [c(Request(b"GET", b"/")) for _ in range(4)]
        self.clock.advance(0.01)
        self.clock.advance(0.01)
        self.assertEqual([self.successResultOf(d).status for d in results], [503] * 4)
        self.assertEqual(len(self.client.requests), 6)
        self.assertEqual(self.counter("retries", "total"), 2)
        self.assertEqual(self.counter("retries", "budget_exhausted"), 4)

    def test_budgetReserve(self) -> None:
        """
        C{minRetriesPerSec * ttlSecs} retries are available without deposits.
        """
        c = self.make([503] * 100, budget=RetryBudget(2, 1, 0.0, self.clock))
        d = c(Request(b"GET", b"/"))
        self.clock.pump([0.01] * 5)
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(len(self.client.requests), 3)

    def test_depositsExpire(self) -> None:
        """
        Deposits older than C{ttlSecs} no longer pay for retries.
        """
        c = self.make([200] * 10 + [503] * 10, budget=RetryBudget(2, 0, 1.0, self.clock))
        for _ in range(10):
            c(Request(b"GET", b"/"))
        self.assertEqual(self.budget.balance, 10)
        gauge = dict(self.registry.items())[("svc", "retries", "budget")]
        self.assertEqual(gauge.read(), 10)  # type: ignore[union-attr]
        self.clock.advance(3)
        self.assertEqual(self.budget.balance, 0)
        d = c(Request(b"GET", b"/"))
        self.clock.pump([0.01] * 3)
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(len(self.client.requests), 12)

    def test_backoffWouldPassTotalTimeout(self) -> None:
        """
        No retry is made if its backoff ends after the total timeout.
        """
        c = self.make([503, 200], backoff=lambda: constant(200), totalTimeout=0.15)
        d = c(Request(b"GET", b"/"))
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_totalTimeoutCancelsAttempt(self) -> None:
        c = self.make([None], totalTimeout=0.5)
        d = c(Request(b"GET", b"/"))
        self.clock.advance(0.5)
        f = self.failureResultOf(d, TotalTimeout)
        self.assertIn("500 ms", str(f.value))
        self.assertEqual(self.client.cancelled, 1)
        self.assertEqual(self.counter("timeouts", "totalTimeout"), 1)
        self.assertEqual(self.perRequest(), (1, 0))

    def test_retriesNeverOutliveTotalTimeout(self) -> None:
        """
        A backend that always fails, a generous budget and jittered backoff:
        the request ends within the total timeout and leaves no timer.
        """
        c = self.make(
            [503] * 10_000,
            budget=RetryBudget(10, 1000, 0.0, self.clock),
            backoff=lambda: jittered(10, 1000, Random(5)),
            totalTimeout=5.0,
        )
        d = c(Request(b"GET", b"/"))
        start = self.clock.seconds()
        while not d.called:
            self.clock.advance(0.01)
        self.assertLessEqual(self.clock.seconds() - start, 5.0)
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertGreater(self.counter("retries", "total"), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_attemptAndTotalTimeouts(self) -> None:
        """
        Attempts time out at 100 ms each and are retried; the total timeout
        of 250 ms cancels the third attempt.
        """
        c = self.make(
            [None] * 5, attemptTimeout=0.1, backoff=lambda: constant(0), totalTimeout=0.25
        )
        d = c(Request(b"GET", b"/"))
        self.clock.advance(0.1)
        self.clock.advance(0)
        self.assertEqual(len(self.client.requests), 2)
        self.clock.advance(0.1)
        self.clock.advance(0)
        self.assertEqual(len(self.client.requests), 3)
        self.assertNoResult(d)
        self.clock.advance(0.05)
        self.failureResultOf(d, TotalTimeout)
        self.assertEqual(self.client.cancelled, 3)
        self.assertEqual(self.perRequest(), (1, 2))

    def test_attemptTimeoutNotRetriedForPost(self) -> None:
        c = self.make([None], attemptTimeout=0.1)
        d = c(Request(b"POST", b"/"))
        self.clock.advance(0.1)
        self.failureResultOf(d, RequestAttemptTimeout)

    def test_callerCancelsAttempt(self) -> None:
        c = self.make([None, 200])
        d = c(Request(b"GET", b"/"))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.client.cancelled, 1)
        self.clock.advance(1)
        self.assertEqual(len(self.client.requests), 1)

    def test_callerCancelsBackoff(self) -> None:
        c = self.make([503, 200], totalTimeout=1.0)
        d = c(Request(b"GET", b"/"))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.client.requests), 1)

    def test_lateResponseDiscarded(self) -> None:
        """
        A response that arrives as its attempt is cancelled is discarded.
        """
        late = Response(200)

        @implementer(IClient)
        class Stubborn(ScriptedClient):
            def __call__(self, request):
                return Deferred(lambda d: d.callback(late))

        c = self.make([], totalTimeout=1.0)
        c.client = Stubborn([])
        d = c(Request(b"GET", b"/"))
        self.clock.advance(1.0)
        self.failureResultOf(d, TotalTimeout)
        self.assertEqual(self.discarded, [late])

    def test_expiredDeadline(self) -> None:
        """
        A deadline already passed fails at once, without an attempt.
        """
        now = int(self.clock.seconds() * S)
        c = self.make([200], totalTimeout=1.0)
        d = c(Request(b"GET", b"/"), deadline=Deadline(now - 60 * S // 1000, now))
        f = self.failureResultOf(d, DeadlineExceeded)
        self.assertIn("60 ms", str(f.value))
        self.assertEqual(self.client.requests, [])
        self.assertEqual(self.counter("timeouts", "deadline"), 1)

    def test_deadlineShorterThanTotal(self) -> None:
        """
        A 50 ms deadline bounds a request whose total timeout is 1 s; the
        outgoing deadline is the caller's.
        """
        incoming = Deadline.ofTimeout(0.05, self.clock)
        c = self.make([None], totalTimeout=1.0)
        d = c(Request(b"GET", b"/"), deadline=incoming)
        self.assertEqual(self.stamped, [incoming])
        self.clock.advance(0.049)
        self.assertNoResult(d)
        self.clock.advance(0.001)
        self.failureResultOf(d, DeadlineExceeded)
        self.assertEqual(self.client.cancelled, 1)
        self.assertEqual(self.counter("timeouts", "deadline"), 1)
        self.assertEqual(self.counter("timeouts", "totalTimeout"), 0)

    def test_totalShorterThanDeadline(self) -> None:
        incoming = Deadline.ofTimeout(10, self.clock)
        c = self.make([None], totalTimeout=0.2)
        d = c(Request(b"GET", b"/"), deadline=incoming)
        self.assertEqual(self.stamped, [Deadline.ofTimeout(0.2, self.clock)])
        self.clock.advance(0.2)
        self.failureResultOf(d, TotalTimeout)

    def test_noDeadlineNoTimeout(self) -> None:
        c = self.make([None])
        d = c(Request(b"GET", b"/"))
        self.assertEqual(self.stamped, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        d.cancel()
        self.failureResultOf(d, CancelledError)

    def test_close(self) -> None:
        c = self.make([])
        self.assertIs(c.status, Status.OPEN)
        self.successResultOf(c.close())
        self.assertTrue(self.client.closed)
        self.assertNotIn(("svc", "retries", "budget"), dict(self.registry.items()))

    def test_brokenClassifierFailsRequest(self) -> None:
        """
        A classifier that raises fails the request with its error instead
        of leaving it pending.
        """

        class Broken:
            def build(self, config, context):
                return self

            def classify(self, request, response, failure):
                raise RuntimeError("classifier bug")

        c = self.make([503], classifier=Broken())
        d = c(Request(b"GET", b"/"))
        self.failureResultOf(d, RuntimeError)
        self.flushLoggedErrors(RuntimeError)


class FastPathTests(RetryHarness, SynchronousTestCase):
    """
    Without a total timeout or deadline, requests take the fast path; its
    outcomes and metrics must match the general path's.
    """

    def outcome(self, script, totalTimeout):
        self.setUp()
        c = self.make(script, totalTimeout=totalTimeout)
        d = c(Request(b"GET", b"/"))
        for _ in range(5):
            self.clock.advance(10)
        d.addCallbacks(lambda r: r.status, lambda f: f.value.__class__)
        result = self.successResultOf(d)
        return (
            result,
            len(self.client.requests),
            self.counter("retries", "total"),
            self.perRequest(),
            self.discarded[:],
        )

    def test_sameAsGeneralPath(self) -> None:
        scripts: list[list[object]] = [
            [200],
            [503, 200],
            [503, 503, 503, 200],
            [ConnectionLost(), 200],
            [ConnectionLost(), ConnectionLost()],
            [404],
        ]
        for script in scripts:
            fast = self.outcome(list(script), None)
            general = self.outcome(list(script), 100.0)
            self.assertEqual(fast[1:3], general[1:3], script)
            self.assertEqual(fast[3], general[3], script)
            self.assertEqual(len(fast[4]), len(general[4]), script)
            self.assertEqual(fast[0], general[0], script)

    def test_cancelDuringBackoff(self) -> None:
        c = self.make([503, 200])
        d = c(Request(b"GET", b"/"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.client.requests), 1)

    def test_budgetExhaustedOnFastPath(self) -> None:
        c = self.make([503, 503], budget=RetryBudget(1, 0, 0.0, self.clock))
        d = c(Request(b"GET", b"/"))
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertEqual(self.counter("retries", "budget_exhausted"), 1)
        self.assertEqual(self.perRequest(), (1, 0))
