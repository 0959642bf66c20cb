# -*- test-case-name: tests.test_policy_classifiers -*-
"""
Response classifiers: is a request/response pair a success, a failure that
may be retried, or a failure that may not?

A classifier may also have no opinion (C{None}); L{FirstOpinion} asks a
list of classifiers in turn, and L{classifyOrDefault} settles what nobody
had an opinion on (a failure is a non-retryable failure, anything else a
success).

The HTTP classifiers follow Linkerd 1: every 5XX response is a failure,
retryable only for the methods the classifier names.  An exception is a
failure too; it is retryable, for those same methods, only if it shows that
the attempt was cut short at the connection (L{isRetryableException}):
connection errors, closed connections and attempt timeouts, as Finagle's
C{TimeoutAndWriteExceptionsOnly} and C{ChannelClosedExceptionsOnly}.
Whether a request I{can} be re-sent (a streamed body cannot) is decided
apart, by the retry filter.

A 5XX response carrying C{l5d-retryable: true} was made by a downstream
router for a request that never reached a backend: it is retryable whatever
the method (L{RetryableHeader}, asked before the configured classifier).
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import implementer

from linkrouter.interfaces import IResponseClassifier, IResponseClassifierPlugin, ResponseClass
from linkrouter.policy.timeouts import RequestAttemptTimeout

RETRYABLE_HEADER = b"l5d-retryable"

READ_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE"})
IDEMPOTENT_METHODS = READ_METHODS | {b"PUT", b"DELETE"}

RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    ConnectError,
    ConnectionClosed,
    RequestAttemptTimeout,
    DeferredTimeoutError,
)
"""
Failures that say the attempt was cut short at the connection or by its own
timeout.  A client's "connection lost" errors should subclass one of these;
an error with C{writtenAnything = False} (nothing was sent) counts too.
"""


class HttpHeaders(Protocol):
    def get(self, name: bytes, default: bytes | None = None) -> bytes | None: ...


class HttpRequest(Protocol):
    """What an HTTP classifier reads of a request."""

    @property
    def method(self) -> bytes: ...


class HttpResponse(Protocol):
    """What an HTTP classifier reads of a response."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> HttpHeaders: ...


def isRetryableException(failure: Failure) -> bool:
    if getattr(failure.value, "writtenAnything", True) is False:
        return True
    return failure.check(*RETRYABLE_EXCEPTIONS) is not None


def classifyOrDefault(
    classifier: IResponseClassifier,
    request: object,
    response: object,
    failure: Failure | None,
) -> ResponseClass:
    """
    C{classifier}'s answer, or when it has none: a non-retryable failure for
    an exception, a success for a response.
    """
    answer: Any = classifier.classify(request, response, failure)
    if answer is not None:
        return answer  # type: ignore[no-any-return]
    return ResponseClass.SUCCESS if failure is None else ResponseClass.NON_RETRYABLE_FAILURE


@implementer(IResponseClassifier)
@attrs.frozen
class FirstOpinion:
    """The answer of the first classifier that has one, or C{None}."""

    classifiers: tuple[IResponseClassifier, ...]

    def classify(self, request: object, response: object, failure: object) -> object:
        for c in self.classifiers:
            answer = c.classify(request, response, failure)
            if answer is not None:
                return answer
        return None


@implementer(IResponseClassifier)
@attrs.frozen
class ServerErrors:
    """
    5XX responses and exceptions are failures; they are retryable when the
    request's method is in C{retryable} (C{None}: every method) and, for an
    exception, when L{isRetryableException} says so.  Everything else is a
    success.
    """

    retryable: frozenset[bytes] | None

    def classify(self, request: Any, response: Any, failure: Any) -> object:
        if failure is None and response.status < 500:
            return ResponseClass.SUCCESS
        mayRetry = self.retryable is None or request.method.upper() in self.retryable
        retry = mayRetry and (failure is None or isRetryableException(failure))
        return ResponseClass.RETRYABLE_FAILURE if retry else ResponseClass.NON_RETRYABLE_FAILURE


@implementer(IResponseClassifier)
@attrs.frozen
class AllSuccessful:
    """Every response is a success; an exception is a non-retryable failure."""

    def classify(self, request: object, response: object, failure: object) -> object:
        return ResponseClass.SUCCESS if failure is None else ResponseClass.NON_RETRYABLE_FAILURE


@implementer(IResponseClassifier)
@attrs.frozen
class RetryableHeader:
    """
    A 5XX response with C{l5d-retryable: true} is a retryable failure; no
    opinion on anything else.
    """

    def classify(self, request: Any, response: Any, failure: Any) -> object:
        if response is None or response.status < 500:
            return None
        flag = response.headers.get(RETRYABLE_HEADER)
        if flag is not None and flag.strip().lower() == b"true":
            return ResponseClass.RETRYABLE_FAILURE
        return None


NON_RETRYABLE_5XX = ServerErrors(frozenset())


def httpClassifier(configured: IResponseClassifier) -> IResponseClassifier:
    """
    The classifier an HTTP service uses: C{l5d-retryable} first, then the
    configured one, then L{NON_RETRYABLE_5XX}.
    """
    return FirstOpinion((RetryableHeader(), configured, NON_RETRYABLE_5XX))


@implementer(IPlugin, IResponseClassifierPlugin)
@attrs.frozen
class HttpClassifierPlugin:
    """
    An HTTP response classifier kind without options.  L{build} returns the
    complete HTTP classifier (L{httpClassifier}).
    """

    kind: str
    classifier: IResponseClassifier
    protocol: str = "http"

    def parseConfig(self, section: object) -> object:
        return None

    def build(self, config: object, context: object) -> IResponseClassifier:
        return httpClassifier(self.classifier)


nonRetryable5XX = HttpClassifierPlugin("io.l5d.http.nonRetryable5XX", NON_RETRYABLE_5XX)
retryableRead5XX = HttpClassifierPlugin("io.l5d.http.retryableRead5XX", ServerErrors(READ_METHODS))
retryableIdempotent5XX = HttpClassifierPlugin(
    "io.l5d.http.retryableIdempotent5XX", ServerErrors(IDEMPOTENT_METHODS)
)
retryableAll5XX = HttpClassifierPlugin("io.l5d.http.retryableAll5XX", ServerErrors(None))
allSuccessful = HttpClassifierPlugin("io.l5d.http.allSuccessful", AllSuccessful())

HTTP_CLASSIFIER_PLUGINS = (
    nonRetryable5XX,
    retryableRead5XX,
    retryableIdempotent5XX,
    retryableAll5XX,
    allSuccessful,
)
DEFAULT_HTTP_CLASSIFIER = nonRetryable5XX.kind
