"""
The admin web server: metrics, configuration, delegation, logging and
shutdown endpoints, compatible with Linkerd's.
"""

from ._resources import StreamingResource
from .delegator import DelegatorResource, RouterHandle
from .loglevels import LoggingResource
from .security import AdminSecurity, compilePatterns, parseAdminSecurity
from .server import influxdbResource, makeAdminSite, prometheusResource

__all__ = [
    "AdminSecurity",
    "DelegatorResource",
    "LoggingResource",
    "RouterHandle",
    "StreamingResource",
    "compilePatterns",
    "influxdbResource",
    "makeAdminSite",
    "parseAdminSecurity",
    "prometheusResource",
]
