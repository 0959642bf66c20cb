"""
Dropin: the built-in telemeter plugins.  Providers only, no logic.
"""

from linkrouter.telemetry.plugins import (
    influxdbTelemeter,
    prometheusTelemeter,
    recentRequestsTelemeter,
)

__all__ = ["influxdbTelemeter", "prometheusTelemeter", "recentRequestsTelemeter"]
