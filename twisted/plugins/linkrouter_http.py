"""
Dropin: the C{http} protocol and its identifiers.  Providers only; importing
this module must stay cheap and must not import the reactor.
"""

from protocols.http.identifiers import (
    headerIdentifier,
    headerTokenIdentifier,
    methodAndHostIdentifier,
    pathIdentifier,
    staticIdentifier,
)
from protocols.http.plugin import httpProtocol

__all__ = [
    "headerIdentifier",
    "headerTokenIdentifier",
    "httpProtocol",
    "methodAndHostIdentifier",
    "pathIdentifier",
    "staticIdentifier",
]
