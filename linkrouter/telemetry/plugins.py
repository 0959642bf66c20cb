# -*- test-case-name: tests.test_telemetry_plugins -*-
"""
Built-in telemeter plugins: C{io.l5d.prometheus}, C{io.l5d.influxdb} and
C{io.l5d.recentRequests} (accepted; records nothing yet).

Their C{build(config, context)} finds the metrics registry through
C{context.stats.registry} (the root L{StatsReceiver}) and streams bodies
on C{context.reactor}.  Importing this
module is cheap: the admin resources are imported when a telemeter is
built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
from twisted.application.service import IService
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from linkrouter.interfaces import ITelemeter, ITelemeterPlugin
from linkrouter.logs import logObserver

from .stats import MetricsRegistry

if TYPE_CHECKING:
    from linkrouter.config._section import Section

_log = Logger(observer=logObserver)

PROMETHEUS_PATH = "/admin/metrics/prometheus"
INFLUXDB_PATH = "/admin/metrics/influxdb"


def _registry(context: Any) -> MetricsRegistry:
    registry = getattr(getattr(context, "stats", None), "registry", None)
    if not isinstance(registry, MetricsRegistry):
        raise TypeError("telemeters need the root StatsReceiver of a MetricsRegistry")
    return registry


def _cooperator(context: Any) -> Cooperator | None:
    """Stream admin bodies on the context's reactor, if it has one."""
    reactor = getattr(context, "reactor", None)
    if reactor is None:
        return None
    return Cooperator(scheduler=lambda step: reactor.callLater(0, step))


def _experimental(section: Section) -> None:
    # A key every Linkerd telemeter accepts; none of ours is experimental.
    section.get("experimental", bool, False)


@implementer(ITelemeter)
@attrs.frozen
class AdminTelemeter:
    """A telemeter that only adds admin endpoints."""

    resources: Mapping[str, object]

    def service(self) -> IService | None:
        return None

    def adminResources(self) -> Mapping[str, object]:
        return self.resources


@attrs.frozen
class PrometheusConfig:
    path: str = PROMETHEUS_PATH
    prefix: str = ""


@implementer(IPlugin, ITelemeterPlugin)
class PrometheusTelemeterPlugin:
    """C{io.l5d.prometheus}: metrics in Prometheus format on C{path}."""

    kind = "io.l5d.prometheus"

    def parseConfig(self, section: Any) -> PrometheusConfig:
        _experimental(section)
        path = section.get("path", str, PROMETHEUS_PATH) or PROMETHEUS_PATH
        if not path.startswith("/"):
            section.error(f"must start with '/': {path!r}", "path")
            path = PROMETHEUS_PATH
        prefix = section.get("prefix", str, "") or ""
        return PrometheusConfig(path, prefix)

    def build(self, config: Any, context: Any) -> AdminTelemeter:
        from linkrouter.admin import prometheusResource

        resource = prometheusResource(_registry(context), config.prefix, _cooperator(context))
        return AdminTelemeter({config.path: resource})


@implementer(IPlugin, ITelemeterPlugin)
class InfluxDbTelemeterPlugin:
    """C{io.l5d.influxdb}: metrics in InfluxDB line protocol."""

    kind = "io.l5d.influxdb"

    def parseConfig(self, section: Any) -> None:
        _experimental(section)

    def build(self, config: Any, context: Any) -> AdminTelemeter:
        from linkrouter.admin import influxdbResource

        resource = influxdbResource(_registry(context), _cooperator(context))
        return AdminTelemeter({INFLUXDB_PATH: resource})


@attrs.frozen
class RecentRequestsConfig:
    sampleRate: float
    capacity: int = 10


@implementer(IPlugin, ITelemeterPlugin)
class RecentRequestsTelemeterPlugin:
    """
    C{io.l5d.recentRequests}: accepted so Linkerd configurations load; the
    dashboard table it feeds does not exist here, so it records nothing.
    """

    kind = "io.l5d.recentRequests"

    def parseConfig(self, section: Any) -> RecentRequestsConfig:
        from linkrouter.config._section import REQUIRED

        _experimental(section)
        rate = section.get("sampleRate", float, REQUIRED)
        if rate is not None and not 0.0 <= rate <= 1.0:
            section.error(f"must be between 0.0 and 1.0, not {rate}", "sampleRate")
        capacity = section.get("capacity", int, 10)
        if capacity is not None and capacity < 1:
            section.error(f"must be at least 1, not {capacity}", "capacity")
        return RecentRequestsConfig(rate or 0.0, capacity or 10)

    def build(self, config: Any, context: Any) -> AdminTelemeter:
        _log.warn("io.l5d.recentRequests is accepted but records nothing in linkrouter")
        return AdminTelemeter({})


prometheusTelemeter = PrometheusTelemeterPlugin()
influxdbTelemeter = InfluxDbTelemeterPlugin()
recentRequestsTelemeter = RecentRequestsTelemeterPlugin()
