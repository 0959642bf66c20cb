# -*- test-case-name: tests.test_http_errors -*-
"""
Router-made responses and the upstream failures they describe.

Every router-made response carries C{l5d-err} (the message, URL-encoded so it
fits on one header line) and a short C{text/plain} body; C{l5d-retryable:
true} marks those the client may safely retry because the request never
reached an application.
"""

from __future__ import annotations

from urllib.parse import quote_plus

from twisted.internet.defer import CancelledError, TimeoutError
from twisted.python.failure import Failure

from protocols.http.message import Headers, Response

DEFAULT_MAX_ERR_RESPONSE_KB = 5


class UpstreamError(Exception):
    """
    A request to an endpoint failed.  C{writtenAnything} says whether any
    byte of the request may have reached the endpoint: when it is C{False}
    the request may be sent again elsewhere (requeued) whatever its method.
    """

    writtenAnything = True

    def __init__(self, message: str, writtenAnything: bool | None = None) -> None:
        super().__init__(message)
        if writtenAnything is not None:
            self.writtenAnything = writtenAnything


class ConnectionFailed(UpstreamError):
    """The endpoint could not be connected to (refused, unreachable, timeout)."""

    writtenAnything = False


class PoolExhausted(UpstreamError):
    """The endpoint's pool is full and so is its queue of waiters."""

    writtenAnything = False


class ConnectionClosed(UpstreamError):
    """The connection closed before the response was complete."""


class MalformedResponse(UpstreamError):
    """The endpoint sent something that is not an HTTP/1.x response."""


class ResponseTooLarge(UpstreamError):
    """Buffering the response (streaming disabled) would exceed C{maxResponseKB}."""


def errorResponse(
    status: int,
    message: str,
    retryable: bool = False,
    maxErrResponseKB: int = DEFAULT_MAX_ERR_RESPONSE_KB,
    detail: str = "",
) -> Response:
    """
    A router-made response: C{l5d-err} holds C{message} URL-encoded, the body
    holds it as text followed by C{detail} (for a human: the dtab, the
    delegation steps), both cut to C{maxErrResponseKB}.
    """
    limit = maxErrResponseKB * 1024
    text = message + ("\n\n" + detail.rstrip("\n") if detail else "")
    body = text.encode("utf-8")[:limit]
    if not body.endswith(b"\n"):
        body = body[: limit - 1] + b"\n"
    headers = Headers(
        [
            (b"l5d-err", quote_plus(message)[:limit].encode("ascii")),
            (b"Content-Type", b"text/plain; charset=utf-8"),
        ]
    )
    if retryable:
        headers.add(b"l5d-retryable", b"true")
    return Response(status, headers, body)


def unidentified(reason: str) -> Response:
    """400: no identifier could name the request."""
    return errorResponse(400, f"Unable to identify the request: {reason}")


def badDtab(header: str, error: str) -> Response:
    """400: a per-request dtab header does not parse."""
    return errorResponse(400, f"Invalid {header} header: {error}")


def noHosts(dst: str, explanation: str = "", maxErrResponseKB: int = 5) -> Response:
    """
    502: C{dst} binds to no endpoint.  C{explanation} (the dtab and the
    delegation steps) follows the first line.
    """
    return errorResponse(
        502,
        f"No hosts are available for {dst}",
        retryable=True,
        maxErrResponseKB=maxErrResponseKB,
        detail=explanation,
    )


def timeout(dst: str, ms: float) -> Response:
    """504: the request did not complete within its timeout."""
    return errorResponse(504, f"Request to {dst} timed out after {ms:g} ms")


def overloaded(limit: int) -> Response:
    """503: more than C{maxConcurrentRequests} requests are in progress."""
    return errorResponse(
        503, f"Too many concurrent requests (maxConcurrentRequests is {limit})", retryable=True
    )


def callDepthExceeded(limit: int) -> Response:
    """400: the request already went through too many proxies (a loop)."""
    return errorResponse(
        400, f"Maximum call depth ({limit}) exceeded: check for a routing loop through Via"
    )


def fromFailure(failure: Failure, dst: str = "") -> Response:
    """The router-made response for a request that failed with C{failure}."""
    exc = failure.value
    where = f" to {dst}" if dst else ""
    if isinstance(exc, PoolExhausted):
        return errorResponse(503, f"Too many waiters{where}: {exc}", retryable=True)
    if isinstance(exc, UpstreamError):
        return errorResponse(
            502, f"Request{where} failed: {exc}", retryable=not exc.writtenAnything
        )
    if isinstance(exc, TimeoutError | CancelledError):
        return errorResponse(504, f"Request{where} timed out")
    return errorResponse(502, f"Request{where} failed: {type(exc).__name__}: {exc}")
