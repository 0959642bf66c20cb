# -*- test-case-name: tests.test_client_balancer -*-
"""
Errors raised by the client stack, and the test deciding which failures may
be requeued.
"""

from __future__ import annotations

from twisted.internet.error import ConnectError
from twisted.python.failure import Failure


class ConnectionFailed(Exception):
    """
    The request never left: connecting to the endpoint failed, so nothing was
    written and the request may be sent elsewhere.  Protocol engines raise
    this (or any exception with C{writtenAnything = False}).
    """

    writtenAnything = False


class NoEndpointsAvailable(Exception):
    """
    The client has no endpoint to send to (the name resolved to nothing, or
    the client is closed).
    """


def isRequeueable(failure: Failure) -> bool:
    """
    Whether C{failure} happened before any byte of the request was written,
    so re-sending it to another endpoint is safe whatever the request.
    """
    value = failure.value
    if getattr(value, "writtenAnything", True) is False:
        return True
    return isinstance(value, ConnectError)
