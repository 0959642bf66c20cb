"""
The protocol-neutral client stack: load balancers over a bound name's
endpoints, failure accrual, requeues and attempt timeouts.

The router builds one balancer per bound name from the configured
C{loadBalancer} plugin's L{BalancerFactory}, with a L{ClientPolicy}; the
protocol supplies the endpoint clients (its connection pools).
"""

from linkrouter.client.accrual import AccrualConfig, AccrualFactory, AccrualPolicy
from linkrouter.client.balancer import Balancer, BalancerFactory, ClientPolicy, classifyFailures
from linkrouter.client.budget import RetryBudget
from linkrouter.client.errors import (
    ConnectionFailed,
    NoEndpointsAvailable,
    isRequeueable,
)
from linkrouter.client.plugins import BalancerConfig
from linkrouter.client.timeout import AttemptTimeout

__all__ = [
    "AccrualConfig",
    "AccrualFactory",
    "AccrualPolicy",
    "AttemptTimeout",
    "Balancer",
    "BalancerConfig",
    "BalancerFactory",
    "ClientPolicy",
    "ConnectionFailed",
    "NoEndpointsAvailable",
    "RetryBudget",
    "classifyFailures",
    "isRequeueable",
]
