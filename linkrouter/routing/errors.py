# -*- test-case-name: tests.test_routing_router -*-
"""
Why a request could not be routed.  Protocols turn these into their own
error replies (HTTP status with C{l5d-err}, Thrift C{TApplicationException}).
"""

from __future__ import annotations


class RoutingError(Exception):
    """
    A request the router could not deliver.  C{str(error)} is one line for
    C{l5d-err}; L{detail} may add lines for a human (the dtab, the delegation
    steps).  C{retryable} says whether the request provably never reached a
    backend.
    """

    retryable = True

    def __init__(self, message: str, detail: str = "") -> None:
        Exception.__init__(self, message)
        self.detail = detail

    @property
    def message(self) -> str:
        return str(self.args[0])


class NoHostsAvailable(RoutingError):
    """The name bound to nothing (negative, empty, or no live address)."""


class BindingFailed(RoutingError):
    """Binding failed: the dtab said C{!}, or a namer failed."""


class BindingTimeout(RoutingError):
    """The name did not bind within C{bindingTimeoutMs}."""


class RouterClosed(RoutingError):
    """The router is shutting down."""
