"""
Dropin: the built-in load balancer and failure accrual plugins.
"""

from linkrouter.client.plugins import (
    apertureBalancer,
    consecutiveFailuresAccrual,
    ewmaBalancer,
    heapBalancer,
    noAccrual,
    p2cBalancer,
    roundRobinBalancer,
    successRateAccrual,
    successRateWindowedAccrual,
)

__all__ = [
    "apertureBalancer",
    "consecutiveFailuresAccrual",
    "ewmaBalancer",
    "heapBalancer",
    "noAccrual",
    "p2cBalancer",
    "roundRobinBalancer",
    "successRateAccrual",
    "successRateWindowedAccrual",
]
