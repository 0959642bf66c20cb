"""
Tests for the built-in telemeter plugins (L{linkrouter.telemetry.plugins}).
"""

import attrs
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from linkrouter._plugins import PluginRegistry
from linkrouter.config._section import ConfigError, Document
from linkrouter.interfaces import ITelemeter, ITelemeterPlugin
from linkrouter.telemetry import MetricsRegistry
from linkrouter.telemetry.plugins import (
    influxdbTelemeter,
    prometheusTelemeter,
    recentRequestsTelemeter,
)

from ._admin_helpers import AdminHarness

PLUGINS = (prometheusTelemeter, influxdbTelemeter, recentRequestsTelemeter)


@attrs.frozen
class Context:
    stats: object
    reactor: object = None


def parse(plugin, text):
    document = Document("linkrouter.yaml", PluginRegistry.fromProviders([]))
    config = plugin.parseConfig(document.load(text))
    document.finish()
    return config


class PluginTests(SynchronousTestCase):
    def setUp(self):
        self.registry = MetricsRegistry()
        self.registry.statsReceiver().scope("rt", "http").counter("requests").incr(2)
        self.clock = MemoryReactorClock()
        self.context = Context(self.registry.statsReceiver(), self.clock)

    def serve(self, telemeter):
        return AdminHarness(
            registry=self.registry, clock=self.clock, resources=telemeter.adminResources()
        )

    def test_discovered(self):
        kinds = sorted(p.kind for p in getPlugins(ITelemeterPlugin))
        for plugin in PLUGINS:
            verifyObject(ITelemeterPlugin, plugin)
            self.assertEqual(kinds.count(plugin.kind), 1)
        self.assertNotIn("io.l5d.statsd", kinds)

    def test_prometheusDefaults(self):
        telemeter = prometheusTelemeter.build(parse(prometheusTelemeter, "{}"), self.context)
        verifyObject(ITelemeter, telemeter)
        self.assertIsNone(telemeter.service())
        self.assertEqual(list(telemeter.adminResources()), ["/admin/metrics/prometheus"])

    def test_prometheusPathAndPrefix(self):
        config = parse(
            prometheusTelemeter, "path: /metrics\nprefix: linkerd_\nexperimental: true\n"
        )
        harness = self.serve(prometheusTelemeter.build(config, self.context))
        text = harness.get("/metrics").text
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        self.assertEqual(
            [(s.name, s.labels) for s in samples], [("linkerd_rt:requests", {"rt": "http"})]
        )

    def test_prometheusBadConfig(self):
        e = self.assertRaises(ConfigError, parse, prometheusTelemeter, "path: metrics\nport: 3\n")
        self.assertIn("must start with '/'", str(e))
        self.assertIn("port", str(e))

    def test_influxdb(self):
        harness = self.serve(influxdbTelemeter.build(parse(influxdbTelemeter, "{}"), self.context))
        self.assertEqual(
            harness.get("/admin/metrics/influxdb").text, "rt,host=admin.test,rt=http requests=2\n"
        )

    def test_recentRequests(self):
        config = parse(recentRequestsTelemeter, "sampleRate: 1.0\ncapacity: 10\n")
        self.assertEqual((config.sampleRate, config.capacity), (1.0, 10))
        self.assertEqual(recentRequestsTelemeter.build(config, self.context).adminResources(), {})
        e = self.assertRaises(ConfigError, parse, recentRequestsTelemeter, "sampleRate: 2\n")
        self.assertIn("between 0.0 and 1.0", str(e))
        self.assertRaises(ConfigError, parse, recentRequestsTelemeter, "capacity: 3\n")

    def test_needsRegistry(self):
        self.assertRaises(
            TypeError, prometheusTelemeter.build, parse(prometheusTelemeter, "{}"), Context(None)
        )
