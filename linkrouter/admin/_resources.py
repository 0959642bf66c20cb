# -*- test-case-name: tests.test_admin_server -*-
"""
Building blocks of admin endpoints: JSON and text bodies, responses that
wait for a Deferred, and responses streamed a chunk per reactor turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import suppress

from twisted.internet import task
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from linkrouter.logs import logObserver

_log = Logger(observer=logObserver)

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


def arg(request: Request, name: str) -> str | None:
    """The first value of query (or form) argument C{name}, if any."""
    values = (request.args or {}).get(name.encode())
    return values[0].decode("utf-8", "replace") if values else None


def flag(request: Request, name: str) -> bool:
    """Whether argument C{name} is C{1} or C{true} (Finagle's boolean params)."""
    return (arg(request, name) or "").lower() in ("1", "true")


def jsonBody(request: Request, value: object, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", JSON)
    return json.dumps(value).encode()


def textBody(request: Request, text: str, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", TEXT)
    return text.encode()


def respondLater(
    request: Request,
    result: Deferred[bytes],
    clock: IReactorTime,
    timeout: float | None = None,
) -> object:
    """
    Finish C{request} with the body C{result} fires with (the callbacks set
    status and headers).  After C{timeout} seconds the work is cancelled
    and the answer is 503 C{Request timed out.}; an unexpected failure is
    logged and answered 500.  A client that goes away cancels the work.

    @return: C{NOT_DONE_YET}, for C{render}.
    """
    gone = False

    def disconnected(_: object) -> None:
        nonlocal gone
        gone = True
        result.cancel()

    request.notifyFinish().addErrback(disconnected)
    if timeout is not None:
        result.addTimeout(timeout, clock)

    def failed(failure: Failure) -> bytes:
        if failure.check(TimeoutError, CancelledError):
            return textBody(request, "Request timed out.", 503)
        _log.failure("admin request {uri} failed", failure, uri=request.uri)
        return textBody(request, f"Internal error: {failure.getErrorMessage()}", 500)

    def finish(body: bytes) -> None:
        if not gone:
            request.write(body)
            request.finish()

    result.addErrback(failed).addCallback(finish)
    return NOT_DONE_YET


class StreamingResource(Resource):
    """
    A GET endpoint whose body is produced as a sequence of text chunks, one
    chunk per cooperative step, so a large body (all metrics of a busy
    router) never holds the reactor for long.

    @param produce: called with the request; may set its status; returns
        the chunks.
    @param cooperator: schedules the steps; the global one by default.
    """

    isLeaf = True

    def __init__(
        self,
        produce: Callable[[Request], Iterator[str]],
        contentType: bytes,
        cooperator: task.Cooperator | None = None,
    ) -> None:
        super().__init__()
        self._produce = produce
        self._contentType = contentType
        self._cooperator = cooperator

    def render_GET(self, request: Request) -> object:
        request.setHeader(b"content-type", self._contentType)
        chunks = self._produce(request)
        gone = False

        def steps() -> Iterator[None]:
            for chunk in chunks:
                if chunk and not gone:
                    request.write(chunk.encode())
                yield None

        cooperate = self._cooperator.cooperate if self._cooperator else task.cooperate
        work = cooperate(steps())

        def disconnected(_: object) -> None:
            nonlocal gone
            gone = True
            with suppress(task.TaskFinished):
                work.stop()

        def done(_: object) -> None:
            if not gone:
                request.finish()

        def failed(failure: Failure) -> None:
            if not failure.check(task.TaskStopped):
                _log.failure("rendering {uri} failed", failure, uri=request.uri)
                done(None)

        request.notifyFinish().addErrback(disconnected)
        work.whenDone().addCallbacks(done, failed)
        return NOT_DONE_YET
