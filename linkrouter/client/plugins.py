# -*- test-case-name: tests.test_client_plugins -*-
"""
Load balancer and failure accrual plugin providers (registered by the
C{twisted/plugins/linkrouter_client.py} dropin).
"""

from __future__ import annotations

import functools
import random as _random
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from linkrouter.config import Section
from linkrouter.interfaces import IFailureAccrualPlugin, ILoadBalancerPlugin

from ._parse import getNumber
from .accrual import (
    CONSECUTIVE_FAILURES,
    NONE,
    SUCCESS_RATE,
    SUCCESS_RATE_WINDOWED,
    AccrualConfig,
    AccrualFactory,
    parseAccrual,
)
from .balancer import BalancerFactory
from .distributors import P2C, Aperture, Distributor, Heap, PeakEwma, RoundRobin


@attrs.frozen
class BalancerConfig:
    """
    A parsed C{loadBalancer} section, with Linkerd's defaults.
    C{enableProbation} defaults to C{false}, as Linkerd's code does (its
    documentation table says C{true}).
    """

    kind: str = "p2c"
    maxEffort: int = 5
    enableProbation: bool = False
    decayTimeMs: int = 10000
    smoothWindowMs: int = 5000
    lowLoad: float = 0.5
    highLoad: float = 2.0
    minAperture: int = 1


def parseBalancer(kind: str, section: Section) -> BalancerConfig:
    d = BalancerConfig()
    maxEffort = getNumber(section, "maxEffort", d.maxEffort, low=1, integer=True)
    probation = section.get("enableProbation", bool, d.enableProbation)
    config = BalancerConfig(kind, maxEffort, d.enableProbation if probation is None else probation)
    if kind == "ewma":
        decay = getNumber(section, "decayTimeMs", d.decayTimeMs, low=1, integer=True)
        return attrs.evolve(config, decayTimeMs=decay)
    if kind == "aperture":
        low = getNumber(section, "lowLoad", d.lowLoad, low=0.0)
        high = getNumber(section, "highLoad", d.highLoad, low=0.0)
        if low >= high:
            section.error(f"lowLoad ({low}) must be below highLoad ({high})", "lowLoad")
        return attrs.evolve(
            config,
            smoothWindowMs=getNumber(
                section, "smoothWindowMs", d.smoothWindowMs, low=1, integer=True
            ),
            lowLoad=low,
            highLoad=high,
            minAperture=getNumber(section, "minAperture", d.minAperture, low=1, integer=True),
        )
    return config


def makeDistributor(
    config: BalancerConfig, rng: _random.Random, clock: IReactorTime
) -> Distributor:
    if config.kind == "ewma":
        return PeakEwma(rng, clock, config.maxEffort, config.decayTimeMs / 1000.0)
    if config.kind == "aperture":
        return Aperture(
            rng,
            clock,
            config.maxEffort,
            config.smoothWindowMs / 1000.0,
            config.lowLoad,
            config.highLoad,
            config.minAperture,
        )
    if config.kind == "heap":
        return Heap(rng, clock, config.maxEffort)
    if config.kind == "roundRobin":
        return RoundRobin(rng, clock, config.maxEffort)
    return P2C(rng, clock, config.maxEffort)


def balancerFactory(
    config: BalancerConfig, clock: IReactorTime, rng: _random.Random | None = None
) -> BalancerFactory:
    return BalancerFactory(
        functools.partial(makeDistributor, config),
        clock,
        config.enableProbation,
        rng if rng is not None else _random.Random(),
    )


@implementer(ILoadBalancerPlugin)
@attrs.frozen
class LoadBalancerPlugin:
    kind: str

    def parseConfig(self, section: object) -> BalancerConfig:
        assert isinstance(section, Section)
        return parseBalancer(self.kind, section)

    def build(self, config: object, context: Any) -> BalancerFactory:
        assert isinstance(config, BalancerConfig)
        return balancerFactory(config, context.reactor)


@implementer(IFailureAccrualPlugin)
@attrs.frozen
class FailureAccrualPlugin:
    kind: str

    def parseConfig(self, section: object) -> AccrualConfig:
        assert isinstance(section, Section)
        return parseAccrual(self.kind, section)

    def build(self, config: object, context: Any) -> AccrualFactory:
        assert isinstance(config, AccrualConfig)
        return AccrualFactory(config, context.reactor)


p2cBalancer = LoadBalancerPlugin("p2c")
ewmaBalancer = LoadBalancerPlugin("ewma")
apertureBalancer = LoadBalancerPlugin("aperture")
heapBalancer = LoadBalancerPlugin("heap")
roundRobinBalancer = LoadBalancerPlugin("roundRobin")

consecutiveFailuresAccrual = FailureAccrualPlugin(CONSECUTIVE_FAILURES)
successRateAccrual = FailureAccrualPlugin(SUCCESS_RATE)
successRateWindowedAccrual = FailureAccrualPlugin(SUCCESS_RATE_WINDOWED)
noAccrual = FailureAccrualPlugin(NONE)
