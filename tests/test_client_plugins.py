"""
Tests for the load balancer and failure accrual plugins and their dropin.
"""

from __future__ import annotations

import attrs
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from linkrouter._plugins import PluginRegistry
from linkrouter.client.accrual import AccrualConfig, AccrualFactory, SuccessRate
from linkrouter.client.balancer import BalancerFactory
from linkrouter.client.plugins import BalancerConfig
from linkrouter.config import Document
from linkrouter.interfaces import (
    IBalancerFactory,
    IFailureAccrualPlugin,
    ILoadBalancerPlugin,
)
from linkrouter.naming import AddrBound, Address, Var
from linkrouter.telemetry.stats import NullStatsReceiver
from tests.test_client_balancer import FakeClient
from twisted.plugins import linkrouter_client

BALANCERS = ["aperture", "ewma", "heap", "p2c", "roundRobin"]
ACCRUALS = [
    "io.l5d.consecutiveFailures",
    "io.l5d.successRate",
    "io.l5d.successRateWindowed",
    "none",
]


@attrs.frozen
class Context:
    reactor: Clock


def registry() -> PluginRegistry:
    return PluginRegistry.fromProviders(
        [
            (iface, provider, name)
            for name, provider in vars(linkrouter_client).items()
            for iface in (ILoadBalancerPlugin, IFailureAccrualPlugin)
            if iface.providedBy(provider)
        ]
    )


class DropinTests(SynchronousTestCase):
    def test_kinds(self) -> None:
        r = registry()
        self.assertEqual(r.kinds(ILoadBalancerPlugin), BALANCERS)
        self.assertEqual(r.kinds(IFailureAccrualPlugin), ACCRUALS)
        for kind in BALANCERS:
            self.assertTrue(verifyObject(ILoadBalancerPlugin, r.get(ILoadBalancerPlugin, kind)))
        for kind in ACCRUALS:
            self.assertTrue(verifyObject(IFailureAccrualPlugin, r.get(IFailureAccrualPlugin, kind)))

    def test_discovered(self) -> None:
        """The installed dropin registers each kind exactly once."""
        r = PluginRegistry.discover()
        for kind in BALANCERS:
            self.assertIsNotNone(r.get(ILoadBalancerPlugin, kind))
        for kind in ACCRUALS:
            self.assertIsNotNone(r.get(IFailureAccrualPlugin, kind))

    def test_parseAndBuild(self) -> None:
        """
        Through L{linkrouter.config.Section.plugin}, as the router's client
        configuration does.
        """
        document = Document("t.yaml", registry())
        section = document.load(
            "loadBalancer: {kind: ewma, decayTimeMs: 2000}\n"
            "failureAccrual: {kind: io.l5d.successRate, successRate: 0.8, requests: 20}\n"
        )
        assert section is not None
        lb = section.plugin("loadBalancer", ILoadBalancerPlugin)
        fa = section.plugin("failureAccrual", IFailureAccrualPlugin)
        document.finish()
        assert lb is not None and fa is not None
        self.assertEqual(lb.config, BalancerConfig("ewma", decayTimeMs=2000))
        self.assertEqual(
            fa.config, AccrualConfig("io.l5d.successRate", successRate=0.8, requests=20)
        )
        clock = Clock()
        factory = lb.plugin.build(lb.config, Context(clock))
        self.assertIsInstance(factory, BalancerFactory)
        self.assertTrue(verifyObject(IBalancerFactory, factory))
        accrual = fa.plugin.build(fa.config, Context(clock))
        self.assertIsInstance(accrual, AccrualFactory)
        self.assertIsInstance(accrual(), SuccessRate)
        balancer = factory.build(
            Var(AddrBound(frozenset({Address("127.0.0.1", 1)}))),
            lambda address: FakeClient(address.port),
            NullStatsReceiver(),
        )
        self.assertEqual(len(balancer.endpointStates()), 1)

    def test_unknownKey(self) -> None:
        document = Document("t.yaml", registry())
        section = document.load("loadBalancer: {kind: p2c, maxEfort: 3}\n")
        assert section is not None
        section.plugin("loadBalancer", ILoadBalancerPlugin)
        with self.assertRaises(Exception) as e:
            document.finish()
        self.assertIn("maxEfort", str(e.exception))
