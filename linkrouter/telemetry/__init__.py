"""
Metrics: the registry every component records into, and its exporters
(C{metrics.json}, Prometheus, InfluxDB line protocol).
"""

from .stats import (
    QUANTILES,
    Counter,
    Gauge,
    Histogram,
    HistogramSummary,
    MetricsRegistry,
    NullStatsReceiver,
    StatsReceiver,
)

__all__ = [
    "QUANTILES",
    "Counter",
    "Gauge",
    "Histogram",
    "HistogramSummary",
    "MetricsRegistry",
    "NullStatsReceiver",
    "StatsReceiver",
]
