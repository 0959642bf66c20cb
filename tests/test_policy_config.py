"""
Tests for L{linkrouter.policy.config}: from a parsed C{service} section to
the retry filter.
"""

import os
from itertools import islice
from random import Random

import yaml
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Backoff, Document, RetryBudget
from linkrouter.config._policy import parseServicePolicy
from linkrouter.interfaces import IClient, IResponseClassifierPlugin, Status
from linkrouter.naming import Path
from linkrouter.policy.classifiers import HTTP_CLASSIFIER_PLUGINS
from linkrouter.policy.config import backoffFactory, retryBudget, retryingClient
from linkrouter.telemetry.stats import MetricsRegistry
from protocols.http.message import Request, Response

from ._corpus import compatDir


class FakeHttpProtocol:
    kind = "http"
    defaultClassifier = "io.l5d.http.nonRetryable5XX"

    def parseServiceConfig(self, section):
        return None


def servicePolicy(testCase, text):
    registry = PluginRegistry.fromProviders(
        (IResponseClassifierPlugin, p, "test") for p in HTTP_CLASSIFIER_PLUGINS
    )
    doc = Document("test.yaml", registry)
    top = doc.load(text)
    assert top is not None
    router = top.sections("routers")[0]
    policy = parseServicePolicy(router.section("service"), FakeHttpProtocol())
    testCase.assertEqual(doc.problems, [])
    return policy


@implementer(IClient)
class Always503:
    status = Status.OPEN

    def __init__(self):
        self.requests = 0

    def __call__(self, request):
        self.requests += 1
        return succeed(Response(503))

    def close(self):
        return succeed(None)


class AdapterTests(SynchronousTestCase):
    def test_constantBackoff(self) -> None:
        self.assertEqual(list(islice(backoffFactory(Backoff("constant", 30, 30))(), 2)), [0.03] * 2)
        self.assertEqual(next(backoffFactory(Backoff())()), 0.0)

    def test_jitteredBackoff(self) -> None:
        """
        Each request gets a fresh jittered backoff starting at C{minMs}.
        """
        factory = backoffFactory(Backoff("jittered", 10, 10000), Random(1))
        first = list(islice(factory(), 5))
        self.assertEqual(first[0], 0.01)
        self.assertEqual(next(factory()), 0.01)

    def test_budget(self) -> None:
        budget = retryBudget(
            RetryBudget(minRetriesPerSec=1, percentCanRetry=0.0, ttlSecs=3), Clock()
        )
        self.assertEqual(budget.balance, 3)

    def test_fromCompatExample(self) -> None:
        """
        C{retries.yaml}: C{retryableIdempotent5XX}, a budget of 5/s + 50% over
        15 s, jittered 10..10000 ms, a total timeout of 1 s.  A GET against
        a backend that always fails is retried until the total timeout
        leaves no room for another backoff.
        """
        with open(os.path.join(compatDir(), "linkerd-examples", "retries.yaml")) as f:
            policy = servicePolicy(self, f.read())
        params = policy.forPath(Path.read("/svc/dog"))
        self.assertEqual(params.totalTimeoutMs, 1000)
        clock = Clock()
        plugin = params.responseClassifier.plugin
        self.assertEqual(plugin.kind, "io.l5d.http.retryableIdempotent5XX")
        registry = MetricsRegistry()
        backend = Always503()
        client = retryingClient(
            backend,
            params,
            plugin.build(params.responseClassifier.config, None),
            clock,
            registry.statsReceiver(),
            mayResend=lambda r: True,
            stampDeadline=lambda r, d: None,
            discard=lambda r: None,
            rng=Random(2),
        )
        self.assertEqual(client.budget.balance, 75)
        d = client(Request(b"PUT", b"/"))
        while not d.called:
            clock.advance(0.005)
        self.assertLess(clock.seconds(), 1.005)
        self.assertEqual(self.successResultOf(d).status, 503)
        self.assertGreater(backend.requests, 2)

    def test_staticPrefixes(self) -> None:
        """
        C{service-options.yaml}: later matching entries win key by key; the
        default classifier applies where none is configured.
        """
        with open(os.path.join(compatDir(), "linkerd-examples", "service-options.yaml")) as f:
            policy = servicePolicy(self, f.read())
        foo = policy.forPath(Path.read("/svc/foo"))
        bar = policy.forPath(Path.read("/svc/bar"))
        self.assertEqual(foo.totalTimeoutMs, 1000)
        self.assertEqual(bar.totalTimeoutMs, 500)
        self.assertEqual(bar.retries.budget, RetryBudget(5, 0.5, 15))
        factory = backoffFactory(bar.retries.backoff)
        self.assertEqual(next(factory()), 0.01)
        self.assertEqual(bar.responseClassifier.plugin.kind, "io.l5d.http.nonRetryable5XX")

    def test_yamlExamplesParse(self) -> None:
        for name in ("retries.yaml", "service-options.yaml"):
            with open(os.path.join(compatDir(), "linkerd-examples", name)) as f:
                self.assertIn("routers", yaml.safe_load(f))
