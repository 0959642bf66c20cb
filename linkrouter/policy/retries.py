# -*- test-case-name: tests.test_policy_retries -*-
"""
The service-level retry filter: a protocol-neutral L{IClient} wrapper that
re-sends failed requests within a retry budget, a backoff, the service's
total timeout and the caller's deadline.

A retry is made only when all of these hold, checked in this order:

 1. the classifier calls the outcome a retryable failure;
 2. the protocol says the request can be re-sent (C{mayResend}: a buffered
    body can, a streamed one cannot);
 3. the next backoff delay ends before the total timeout and the deadline;
 4. the budget grants a withdrawal (else C{retries/budget_exhausted}).

Each request (not each retry) deposits into the budget when it starts, as
Finagle's retry filter does: C{percentCanRetry} is a share of requests.

Without a total timeout or a deadline, a request starts on a fast path: the
first attempt's Deferred is returned with one callback that classifies the
outcome; only a retryable outcome builds the retry machinery (and the
caller's Deferred then waits on it).  A caller cancelling the first attempt
gets C{CancelledError}, as on the slow path.

When the total timeout or the deadline passes, or the caller cancels, the
attempt in flight (or the pending backoff) is cancelled, so its client
drops the connection instead of reusing it; the caller gets
L{TotalTimeout}, L{DeadlineExceeded} or C{CancelledError}.  A deadline that
has already passed fails the request at once, without an attempt.

Metrics, under the stats receiver given (the service's scope):
C{retries/per_request} (histogram), C{retries/total},
C{retries/budget_exhausted}, C{retries/budget} (gauge: the balance),
C{timeouts/totalTimeout}, C{timeouts/deadline}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.interfaces import (
    IClient,
    ICounter,
    IResponseClassifier,
    IStatsReceiver,
    ResponseClass,
)
from linkrouter.policy.backoff import Backoff, BackoffFactory
from linkrouter.policy.classifiers import classifyOrDefault
from linkrouter.policy.timeouts import (
    NANOS,
    Deadline,
    DeadlineExceeded,
    RequestTimeout,
    TotalTimeout,
    outgoingDeadline,
    withTimeout,
)

if TYPE_CHECKING:
    from linkrouter.client.balancer import RequestRecorder

Rep = TypeVar("Rep")

_SUCCESS = ResponseClass.SUCCESS


class RetryBudget(Protocol):
    """
    What the filter needs of a retry budget
    (L{linkrouter.client.budget.RetryBudget}).
    """

    def deposit(self, now: float | None = None) -> None: ...

    def tryWithdraw(self) -> bool: ...

    @property
    def balance(self) -> float: ...


def _always(request: object) -> bool:
    return True


def _ignore(value: object) -> None:
    return None


def _stampNothing(request: object, deadline: Deadline) -> None:
    return None


@implementer(IClient)
class RetryingClient(Generic[Rep]):
    """
    Wraps C{client} (the service's client: each attempt may go to another
    endpoint) with retries.  One per service; the budget is not shared.

    @param totalTimeout: seconds for the whole request, retries included,
        or C{None} for no limit.
    @param mayResend: whether a request can be sent again.
    @param stampDeadline: called with the request and the outgoing deadline
        (the earlier of the caller's and now plus C{totalTimeout}) before the
        first attempt, for the protocol to write C{l5d-ctx-deadline}.
    @param discard: called with a response that a retry replaces (to release
        its body, for example).
    """

    def __init__(
        self,
        client: IClient,
        *,
        classifier: IResponseClassifier,
        budget: RetryBudget,
        backoff: BackoffFactory,
        clock: IReactorTime,
        stats: IStatsReceiver,
        totalTimeout: float | None = None,
        mayResend: Callable[[Any], bool] = _always,
        stampDeadline: Callable[[Any, Deadline], object] = _stampNothing,
        discard: Callable[[Rep], object] = _ignore,
    ) -> None:
        self.client = client
        self.classifier = classifier
        self.budget = budget
        self.backoff = backoff
        self.clock = clock
        self.totalTimeout = totalTimeout
        self.mayResend = mayResend
        self.stampDeadline = stampDeadline
        self.discard = discard
        self._perRequest = stats.histogram("retries", "per_request")
        self._total = stats.counter("retries", "total")
        self._exhausted = stats.counter("retries", "budget_exhausted")
        self._totalTimeouts = stats.counter("timeouts", "totalTimeout")
        self._deadlineTimeouts = stats.counter("timeouts", "deadline")
        self._gauge = stats.addGauge(("retries", "budget"), lambda: float(budget.balance))
        self._recorder: RequestRecorder | None = None
        self._annotate: Callable[[Any], object] | None = None
        self._deadlineOf: Callable[[Any], Deadline | None] | None = None

    def record(
        self,
        stats: RequestRecorder,
        annotate: Callable[[Any], object] | None = None,
        deadlineOf: Callable[[Any], Deadline | None] | None = None,
    ) -> None:
        """
        From now on, also record each request's outcome in C{stats} (the
        service's request metrics, so that one callback per request does
        both; C{stats} must classify as this filter does, since it is given
        the filter's verdict), call C{annotate} with each request first, and read the
        caller's deadline of a request given without one with
        C{deadlineOf}.
        """
        self._recorder = stats
        self._annotate = annotate
        self._deadlineOf = deadlineOf

    @property
    def status(self) -> object:
        return self.client.status

    def close(self) -> Deferred[Any]:
        self._gauge.remove()
        if self._recorder is not None:
            self._recorder.close()
        return self.client.close()

    def __call__(self, request: Any, deadline: Deadline | None = None) -> Deferred[Rep]:
        """
        Send C{request}, retrying as the policy allows.

        @param deadline: the caller's deadline (C{l5d-ctx-deadline}), if any.
        """
        if self._annotate is not None:
            self._annotate(request)
        begun: float | None = None
        if self._recorder is not None:
            begun = self._recorder.begin()
        if deadline is None and self._deadlineOf is not None:
            deadline = self._deadlineOf(request)
        if deadline is None and self.totalTimeout is None:
            self.budget.deposit(begun)
            try:
                d: Deferred[Rep] = self.client(request)
            except Exception:
                d = fail()
            return d.addBoth(self._first, request, begun)
        return self._recording(self._limited(request, deadline), request, begun)

    def _limited(self, request: Any, deadline: Deadline | None) -> Deferred[Rep]:
        """The slow path: a total timeout or a deadline applies."""
        limit: tuple[float, Callable[[float], RequestTimeout]] | None = None
        if self.totalTimeout is not None:
            limit = (self.totalTimeout, self._timedOut(TotalTimeout, self._totalTimeouts))
        if deadline is not None:
            remaining = deadline.remaining(self.clock)
            if remaining <= 0:
                self._deadlineTimeouts.incr()
                return fail(DeadlineExceeded(self._span(deadline)))
            if limit is None or remaining < limit[0]:
                span = self._span(deadline)
                error = self._timedOut(DeadlineExceeded, self._deadlineTimeouts)
                limit = (remaining, lambda _: error(span))
        stamp = outgoingDeadline(deadline, self.totalTimeout, self.clock)
        if stamp is not None:
            self.stampDeadline(request, stamp)
        self.budget.deposit()
        end = None if limit is None else self.clock.seconds() + limit[0]
        call = _Call(self, request, end)
        call.attempt()
        if limit is None:
            return call.result
        return withTimeout(call.result, limit[0], self.clock, limit[1])

    def _first(
        self, result: Rep | Failure, request: Any, begun: float | None
    ) -> Rep | Failure | Deferred[Rep]:
        """The fast path's first outcome: returned as is unless it is retried."""
        if isinstance(result, Failure):
            response, failure = None, result
            verdict = None if result.check(CancelledError) else self._verdict(request, None, result)
        else:
            response, failure = result, None
            verdict = self._verdict(request, result, None)
        if verdict is None or not verdict.isRetryable:
            self._perRequest.add(0)
            if begun is not None:
                assert self._recorder is not None
                success = None if verdict is None else verdict is _SUCCESS
                self._recorder.end(begun, request, response, failure, success)
            return result
        call = _Call(self, request, None)
        call._outcome(response, failure)
        return self._recording(call.result, request, begun)

    def _verdict(self, request: Any, response: object, failure: Failure | None) -> ResponseClass:
        try:
            return classifyOrDefault(self.classifier, request, response, failure)
        except Exception:
            # Retryable: the slow path then fails the request with the error.
            return ResponseClass.RETRYABLE_FAILURE

    def _recording(self, d: Deferred[Rep], request: Any, begun: float | None) -> Deferred[Rep]:
        """C{d}, whose outcome is recorded in the request stats, if any."""
        if begun is None:
            return d
        return d.addBoth(self._recorded, request, begun)

    def _recorded(self, result: Rep | Failure, request: Any, begun: float) -> Rep | Failure:
        assert self._recorder is not None
        if isinstance(result, Failure):
            self._recorder.end(begun, request, None, result)
        else:
            self._recorder.end(begun, request, result, None)
        return result

    @staticmethod
    def _span(deadline: Deadline) -> float:
        return max(deadline.deadline - deadline.timestamp, 0) / NANOS

    @staticmethod
    def _timedOut(
        kind: Callable[[float], RequestTimeout], counter: ICounter
    ) -> Callable[[float], RequestTimeout]:
        def error(seconds: float) -> RequestTimeout:
            counter.incr()
            return kind(seconds)

        return error


class _Call(Generic[Rep]):
    """One request's attempts; C{result} fires once with the outcome."""

    def __init__(self, policy: RetryingClient[Rep], request: Any, end: float | None) -> None:
        self.policy = policy
        self.request = request
        self.end = end
        self.retries = 0
        self.result: Deferred[Rep] = Deferred(self._cancel)
        self.result.addBoth(self._record)
        self._done = False
        self._backoff: Backoff | None = None
        self._inflight: Deferred[Rep] | None = None
        self._pending: IDelayedCall | None = None

    def attempt(self) -> None:
        self._pending = None
        d = self._inflight = cast("Deferred[Rep]", maybeDeferred(self.policy.client, self.request))
        d.addCallbacks(self._settled, self._failed)

    def _settled(self, response: Rep) -> None:
        self._outcome(response, None)

    def _failed(self, failure: Failure) -> None:
        self._outcome(None, failure)

    def _outcome(self, response: Rep | None, failure: Failure | None) -> None:
        self._inflight = None
        policy = self.policy
        if self._done:
            if response is not None:
                policy.discard(response)
            return
        try:
            delay = self._retryDelay(response, failure)
        except Exception:
            # A broken classifier or hook fails the request, never hangs it.
            failure = Failure()
            delay = None
        if delay is not None:
            self.retries += 1
            policy._total.incr()
            if response is not None:
                policy.discard(response)
            self._pending = policy.clock.callLater(delay, self.attempt)
            return
        self._done = True
        if failure is not None:
            self.result.errback(failure)
        else:
            self.result.callback(cast(Rep, response))

    def _retryDelay(self, response: Rep | None, failure: Failure | None) -> float | None:
        """The backoff before a retry, or C{None} if no retry may be made."""
        policy = self.policy
        answer = classifyOrDefault(policy.classifier, self.request, response, failure)
        if not answer.isRetryable or not policy.mayResend(self.request):
            return None
        if self._backoff is None:
            self._backoff = policy.backoff()
        delay = next(self._backoff)
        if self.end is not None and policy.clock.seconds() + delay >= self.end:
            return None
        return delay if self._withdraw() else None

    def _withdraw(self) -> bool:
        if self.policy.budget.tryWithdraw():
            return True
        self.policy._exhausted.incr()
        return False

    def _cancel(self, result: Deferred[Rep]) -> None:
        self._done = True
        inflight, self._inflight = self._inflight, None
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
        if inflight is not None:
            inflight.cancel()

    def _record(self, outcome: object) -> object:
        self.policy._perRequest.add(self.retries)
        return outcome
