"""
Tests for the C{io.l5d.dnssrv} namer (L{namers.dnssrv}) against a real
L{twisted.names} server on 127.0.0.1.
"""

from typing import Any, cast

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.names import authority, client, common, dns, server
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Document
from linkrouter.interfaces import INamerPlugin
from linkrouter.naming import NEG, AddrBound, Address, AddrFailed, Leaf, Ok, Path
from linkrouter.telemetry.stats import MetricsRegistry
from namers.dnssrv import DnsSrvConfig, DnsSrvNamer, dnsSrvNamer, parseServer

from .test_namers_fs import metricValue

ZONE = b"test.example"


class MemoryAuthority(authority.FileAuthority):
    """An authority for L{ZONE} whose records the test edits."""

    def __init__(self, records):
        common.ResolverBase.__init__(self)
        self.soa = cast(Any, (ZONE, dns.Record_SOA(mname=b"ns." + ZONE, serial=1, minimum=1)))
        self.records = records


def srv(port, target):
    return dns.Record_SRV(priority=0, weight=0, port=port, target=target, ttl=1)


def P(text):
    return Path.read(text)


class DnsSrvNamerTests(TestCase):
    timeout = 20

    def setUp(self):
        self.records: dict[bytes, list[Any]] = {
            ZONE: [dns.Record_SOA(mname=b"ns." + ZONE, serial=1, minimum=1)],
            b"_http._tcp.web." + ZONE: [
                srv(8080, b"a." + ZONE),
                srv(8081, b"b." + ZONE),
            ],
            b"a." + ZONE: [dns.Record_A("127.0.0.10", ttl=1)],
            b"b." + ZONE: [dns.Record_A("127.0.0.11", ttl=1)],
            b"_http._tcp.empty." + ZONE: [dns.Record_A("127.0.0.12", ttl=1)],
            b"_http._tcp.ghost." + ZONE: [srv(1, b"nowhere." + ZONE)],
        }
        factory = server.DNSServerFactory(authorities=[MemoryAuthority(self.records)])
        self.port = cast(Any, reactor).listenUDP(
            0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1"
        )
        self.addCleanup(self.stopServer)
        resolver = client.Resolver(
            servers=[("127.0.0.1", self.port.getHost().port)], reactor=reactor
        )
        self.clock = Clock()
        self.metrics = MetricsRegistry()
        self.namer = DnsSrvNamer(
            P("/#/io.l5d.dnssrv"),
            resolver,
            self.clock,
            self.metrics.statsReceiver(),
            refreshInterval=5,
            domain=ZONE.decode(),
            timeout=(0.3,),
        )

    def stopServer(self):
        if self.port.connected:
            return self.port.stopListening()

    @defer.inlineCallbacks
    def settle(self, var, accept, seconds=5.0):
        """Wait (bounded) for C{var} to hold a value C{accept} likes."""
        d: defer.Deferred[Any] = defer.Deferred()

        def check(value):
            if accept(value) and not d.called:
                d.callback(value)

        closable = var.observe(check)
        try:
            value = yield d.addTimeout(seconds, reactor)
        finally:
            closable.close()
        return value

    def observe(self, activity):
        closable = activity.observe(lambda s: None)
        self.addCleanup(closable.close)
        return activity

    @defer.inlineCallbacks
    def test_lookup(self):
        activity = self.observe(self.namer.lookup(P("/_http._tcp.web/rest")))
        state = yield self.settle(activity.var, lambda s: type(s) is Ok)
        bound = state.value.value
        self.assertEqual(bound.id, P("/#/io.l5d.dnssrv/_http._tcp.web"))
        self.assertEqual(bound.residual, P("/rest"))
        self.assertEqual(
            bound.addr.sample(),
            AddrBound(frozenset([Address("127.0.0.10", 8080), Address("127.0.0.11", 8081)])),
        )
        self.assertEqual(metricValue(self.metrics, "lookup_successes_total"), 1)

    @defer.inlineCallbacks
    def test_absoluteName(self):
        activity = self.observe(self.namer.lookup(P("/_http._tcp.web.test.example.")))
        state = yield self.settle(activity.var, lambda s: type(s) is Ok)
        self.assertEqual(type(state.value), Leaf)

    @defer.inlineCallbacks
    def test_missingAndEmptyAreNeg(self):
        for name in ("/_http._tcp.nothing", "/_http._tcp.empty"):
            activity = self.observe(self.namer.lookup(P(name)))
            state = yield self.settle(activity.var, lambda s: type(s) is Ok)
            self.assertEqual(state, Ok(NEG), name)

    @defer.inlineCallbacks
    def test_unknownTargetSkipped(self):
        activity = self.observe(self.namer.lookup(P("/_http._tcp.ghost")))
        state = yield self.settle(activity.var, lambda s: type(s) is Ok)
        self.assertEqual(state, Ok(NEG))
        self.assertEqual(metricValue(self.metrics, "unknown_srv_hosts_results_total"), 1)

    @defer.inlineCallbacks
    def test_refreshAndStale(self):
        activity = self.observe(self.namer.lookup(P("/_http._tcp.web")))
        state = yield self.settle(activity.var, lambda s: type(s) is Ok)
        addr = state.value.value.addr
        self.records[b"_http._tcp.web." + ZONE] = [srv(9000, b"a." + ZONE)]
        self.clock.advance(5)
        yield self.settle(addr, lambda a: a == AddrBound(frozenset([Address("127.0.0.10", 9000)])))
        yield self.stopServer()
        self.clock.advance(5)
        for _ in range(50):
            if metricValue(self.metrics, "stale") == 1:
                break
            yield deferLater(0.05)
        self.assertEqual(metricValue(self.metrics, "stale"), 1)
        self.assertEqual(addr.sample(), AddrBound(frozenset([Address("127.0.0.10", 9000)])))
        self.assertEqual(type(activity.state.value), Leaf)

    @defer.inlineCallbacks
    def test_neverResolvedFailureIsNeg(self):
        yield self.stopServer()
        activity = self.observe(self.namer.lookup(P("/_http._tcp.web")))
        state = yield self.settle(activity.var, lambda s: type(s) is Ok)
        self.assertEqual(state, Ok(NEG))
        self.assertEqual(
            type(self.namer._watches["_http._tcp.web." + ZONE.decode()].addr.sample()), AddrFailed
        )

    @defer.inlineCallbacks
    def test_notWatchedWhenUnobserved(self):
        activity = self.namer.lookup(P("/_http._tcp.web"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        yield self.settle(activity.var, lambda s: type(s) is Ok)
        self.assertEqual(self.clock.getDelayedCalls(), [])


def deferLater(seconds):
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


class ConfigTests(SynchronousTestCase):
    def parse(self, text):
        document = Document(
            "t.yaml", PluginRegistry.fromProviders([(INamerPlugin, dnsSrvNamer, "t")])
        )
        section = document.load(text)
        assert section is not None
        return section.parseAs(INamerPlugin), [str(p) for p in document.problems]

    def test_parse(self):
        result, problems = self.parse(
            "kind: io.l5d.dnssrv\nexperimental: true\nrefreshIntervalSeconds: 2\n"
            "domain: srv.example\ndnsHosts: ['127.0.0.1:5353', '::1', '[::1]:54']"
        )
        self.assertEqual(problems, [])
        self.assertEqual(
            result.config,
            DnsSrvConfig(
                P("/#/io.l5d.dnssrv"),
                2,
                "srv.example",
                (("127.0.0.1", 5353), ("::1", 53), ("::1", 54)),
            ),
        )

    def test_experimentalRequired(self):
        _, problems = self.parse("kind: io.l5d.dnssrv")
        self.assertIn("experimental", problems[0])

    def test_badHosts(self):
        _, problems = self.parse(
            "kind: io.l5d.dnssrv\nexperimental: true\ndnsHosts: [ns0.example.org]"
        )
        self.assertIn("dnsHosts: 'ns0.example.org' is not an IP address", problems[0])

    def test_parseServer(self):
        self.assertEqual(parseServer("10.0.0.1"), ("10.0.0.1", 53))
        for bad in ["x", "10.0.0.1:0", "10.0.0.1:x", "[::1", "[::1]x", "1.2.3.4:99999"]:
            self.assertIsNone(parseServer(bad), bad)

    def test_parseServerOnlyASCIIPorts(self):
        for bad in ["10.0.0.1:\u00b2", "[::1]:\u00b9", "10.0.0.1:\u0661", "10.0.0.1:" + "9" * 5000]:
            self.assertIsNone(parseServer(bad), bad)

    def test_build(self):
        result, _ = self.parse(
            "kind: io.l5d.dnssrv\nexperimental: true\ndnsHosts: ['127.0.0.1:5353']"
        )
        ctx = type("C", (), {"reactor": Clock(), "stats": MetricsRegistry().statsReceiver()})
        namer = dnsSrvNamer.build(result.config, ctx)
        self.assertIsInstance(namer, DnsSrvNamer)
