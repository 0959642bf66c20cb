"""
The protocol-neutral router core: identification results, routing errors and
the L{Router} that binds destinations and picks clients.
"""

from .errors import BindingFailed, BindingTimeout, NoHostsAvailable, RouterClosed, RoutingError
from .explain import explainDelegation
from .identification import Identification, Identified, Unidentified
from .router import NewClient, NewService, Router

__all__ = [
    "BindingFailed",
    "BindingTimeout",
    "Identification",
    "Identified",
    "NewClient",
    "NewService",
    "NoHostsAvailable",
    "Router",
    "RouterClosed",
    "RoutingError",
    "Unidentified",
    "explainDelegation",
]
