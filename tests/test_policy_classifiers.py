"""
Tests for L{linkrouter.policy.classifiers}, against the HTTP message types.
"""

from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from linkrouter.interfaces import IResponseClassifier, IResponseClassifierPlugin, ResponseClass
from linkrouter.policy.classifiers import (
    DEFAULT_HTTP_CLASSIFIER,
    HTTP_CLASSIFIER_PLUGINS,
    FirstOpinion,
    RetryableHeader,
    allSuccessful,
    classifyOrDefault,
    isRetryableException,
    nonRetryable5XX,
    retryableAll5XX,
    retryableIdempotent5XX,
    retryableRead5XX,
)
from linkrouter.policy.timeouts import RequestAttemptTimeout, TotalTimeout
from protocols.http.message import Headers, Request, Response

S = ResponseClass.SUCCESS
R = ResponseClass.RETRYABLE_FAILURE
N = ResponseClass.NON_RETRYABLE_FAILURE

METHODS = [b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE", b"POST", b"PATCH"]
READ = {b"GET", b"HEAD", b"OPTIONS", b"TRACE"}
IDEMPOTENT = READ | {b"PUT", b"DELETE"}

RETRYING = {
    nonRetryable5XX: set(),
    retryableRead5XX: READ,
    retryableIdempotent5XX: IDEMPOTENT,
    retryableAll5XX: set(METHODS),
}


def response(status, retryable=None):
    headers = Headers()
    if retryable is not None:
        headers.add(b"L5d-Retryable", retryable)
    return Response(status, headers)


class HttpClassifierTableTests(SynchronousTestCase):
    def expected(self, plugin, method, status, header):
        if status >= 500 and header == b"true":
            return R
        if plugin is allSuccessful or status < 500:
            return S
        return R if method in RETRYING[plugin] else N

    def test_table(self) -> None:
        """
        Every classifier, every method, statuses around the 5XX boundary,
        with and without C{l5d-retryable}.
        """
        for plugin in HTTP_CLASSIFIER_PLUGINS:
            classifier = plugin.build(None, None)
            for method in METHODS:
                for status in (200, 204, 302, 404, 499, 500, 502, 503, 504, 599):
                    for header in (None, b"true", b"false"):
                        with self.subTest(kind=plugin.kind, method=method, status=status, h=header):
                            got = classifier.classify(
                                Request(method, b"/"), response(status, header), None
                            )
                            self.assertEqual(got, self.expected(plugin, method, status, header))

    def test_lowerCaseMethod(self) -> None:
        c = retryableRead5XX.build(None, None)
        self.assertEqual(c.classify(Request(b"get", b"/"), response(503), None), R)

    def test_headerValueCaseAndSpace(self) -> None:
        c = nonRetryable5XX.build(None, None)
        self.assertEqual(c.classify(Request(b"POST", b"/"), response(502, b" TRUE "), None), R)


class ExceptionTests(SynchronousTestCase):
    """
    Exceptions are failures; retryable ones (the attempt was cut short at
    the connection or by its own timeout) only for the retrying methods.
    """

    RETRYABLE = [
        ConnectionRefusedError(),
        ConnectionLost(),
        RequestAttemptTimeout(0.1),
        DeferredTimeoutError(),
    ]

    def test_isRetryableException(self) -> None:
        for e in self.RETRYABLE:
            self.assertTrue(isRetryableException(Failure(e)), e)
        for e in [ValueError(), TotalTimeout(1)]:
            self.assertFalse(isRetryableException(Failure(e)), e)

    def test_nothingWritten(self) -> None:
        class NeverSent(Exception):
            writtenAnything = False

        self.assertTrue(isRetryableException(Failure(NeverSent())))

    def test_table(self) -> None:
        for plugin in HTTP_CLASSIFIER_PLUGINS:
            classifier = plugin.build(None, None)
            for method in METHODS:
                for e in [*self.RETRYABLE, ValueError("x")]:
                    with self.subTest(kind=plugin.kind, method=method, e=e):
                        got = classifier.classify(Request(method, b"/"), None, Failure(e))
                        retry = plugin is not allSuccessful and method in RETRYING[plugin]
                        retry = retry and not isinstance(e, ValueError)
                        self.assertEqual(got, R if retry else N)


class CompositionTests(SynchronousTestCase):
    def test_firstOpinionWins(self) -> None:
        @implementer(IResponseClassifier)
        class Fixed:
            def __init__(self, answer):
                self.answer = answer
                self.asked = 0

            def classify(self, request, response, failure):
                self.asked += 1
                return self.answer

        none, success, never = Fixed(None), Fixed(S), Fixed(N)
        c = FirstOpinion((none, success, never))
        self.assertEqual(c.classify(None, None, None), S)
        self.assertEqual((none.asked, success.asked, never.asked), (1, 1, 0))
        self.assertIsNone(FirstOpinion((none,)).classify(None, None, None))

    def test_default(self) -> None:
        """
        With no opinion, a failure is non-retryable and a response a success.
        """
        c = FirstOpinion(())
        self.assertEqual(classifyOrDefault(c, None, object(), None), S)
        self.assertEqual(classifyOrDefault(c, None, None, Failure(ValueError())), N)

    def test_headerHasNoOpinionOtherwise(self) -> None:
        h = RetryableHeader()
        get = Request(b"GET", b"/")
        self.assertIsNone(h.classify(get, response(200, b"true"), None))
        self.assertIsNone(h.classify(get, response(503), None))
        self.assertIsNone(h.classify(get, None, Failure(ConnectionLost())))


class PluginTests(SynchronousTestCase):
    def test_providers(self) -> None:
        kinds = [p.kind for p in HTTP_CLASSIFIER_PLUGINS]
        self.assertEqual(
            kinds,
            [
                "io.l5d.http.nonRetryable5XX",
                "io.l5d.http.retryableRead5XX",
                "io.l5d.http.retryableIdempotent5XX",
                "io.l5d.http.retryableAll5XX",
                "io.l5d.http.allSuccessful",
            ],
        )
        self.assertEqual(DEFAULT_HTTP_CLASSIFIER, "io.l5d.http.nonRetryable5XX")
        for p in HTTP_CLASSIFIER_PLUGINS:
            self.assertTrue(verifyObject(IResponseClassifierPlugin, p))
            self.assertEqual(p.protocol, "http")
            self.assertIsNone(p.parseConfig(None))
            self.assertTrue(verifyObject(IResponseClassifier, p.build(None, None)))

    def test_discovered(self) -> None:
        """
        The dropin registers each built-in classifier exactly once.
        """
        from twisted.plugin import getPlugins

        found = [
            p.kind
            for p in getPlugins(IResponseClassifierPlugin)
            if p.kind.startswith("io.l5d.http.")
        ]
        self.assertEqual(sorted(found), sorted(p.kind for p in HTTP_CLASSIFIER_PLUGINS))
