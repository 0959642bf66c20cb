"""
The HTTP router built from YAML by the linker service, soaked over loopback
sockets: rounds of short-lived and keep-alive clients, clients that go away
mid-request, shut down their sending side or sit idle until the server
session closes them, and a backend that closes connections.  Afterwards the
process holds no more file descriptors than before, the router's pools
never held more than C{maxSize} connections, and the memory held by our
modules does not grow from round to round.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Any

import httptools
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

import linkrouter
import protocols
from linkrouter.config import ClientParams
from linkrouter.interfaces import IClient
from linkrouter.naming import Address
from protocols.http.client import HTTPPool
from protocols.http.plugin import HttpRouter
from protocols.http.server import HTTPServerFactory
from tests._linker import startLinker

reactor: Any = _reactor

MAX_SIZE = 4

CONFIG = f"""
admin:
  ip: 127.0.0.1
  port: 0
routers:
- protocol: http
  label: soak
  dtab: /svc => /$/inet/127.0.0.1/{{port}};
  servers:
  - ip: 127.0.0.1
    port: 0
    serverSession:
      idleTimeMs: 500
      lifeTimeMs: 1000
  client:
    hostConnectionPool:
      maxSize: {MAX_SIZE}
      maxWaiters: 1000
      idleTimeMs: 300
    clientSession:
      lifeTimeMs: 400
"""


def openFds() -> dict[str, str]:
    """This process's open file descriptors and what they are."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:
            pass  # the directory listing's own
    return fds


class BackendConnection(Protocol):
    """
    Answers each request (C{/slow} after 50 ms); every seventh response
    says C{Connection: close} and the connection closes after it.
    """

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.buffer = b""
        self.timers: list[IDelayedCall] = []

    def connectionMade(self) -> None:
        self.backend.connections.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.backend.connections.discard(self)
        for timer in self.timers:
            if timer.active():
                timer.cancel()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            if head.startswith(b"GET /slow "):
                self.timers.append(reactor.callLater(0.05, self.answer))
            else:
                self.answer()

    def answer(self) -> None:
        if self.transport is None:
            return
        backend = self.backend
        backend.answered += 1
        close = backend.answered % 7 == 0
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n%s\r\nok"
            % (b"Connection: close\r\n" if close else b"")
        )
        if close:
            self.transport.loseConnection()


class Backend:
    def __init__(self) -> None:
        self.connections: set[BackendConnection] = set()
        self.answered = 0
        self.port = reactor.listenTCP(
            0, Factory.forProtocol(lambda: BackendConnection(self)), interface="127.0.0.1"
        )


class Client(Protocol):
    """A downstream client: sends requests, counts complete responses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.responses: list[tuple[int, bool]] = []  # (status, keep-alive)
        self.waiting: Deferred[None] | None = None
        self.lost: Deferred[None] = Deferred()
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.responses.append((self.parser.get_status_code(), self.parser.should_keep_alive()))
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.callback(None)

    def request(self, path: bytes = b"/") -> Deferred[None]:
        assert self.transport is not None
        self.waiting = Deferred()
        self.transport.write(b"GET %s HTTP/1.1\r\nHost: soak\r\n\r\n" % path)
        return self.waiting

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed = True
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.errback(Failure(AssertionError("closed before the response")))
        self.lost.callback(None)


class SoakTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.backend = Backend()
        self.addCleanup(self.backend.port.stopListening)
        self.pools: list[HTTPPool] = []
        connect = HttpRouter._connect

        def recording(router: HttpRouter, address: Address, params: ClientParams) -> IClient:
            pool = connect(router, address, params)
            assert isinstance(pool, HTTPPool)
            self.pools.append(pool)
            return pool

        self.patch(HttpRouter, "_connect", recording)
        self.linker = startLinker(self, CONFIG.format(port=self.backend.port.getHost().port))
        (runtime,) = self.linker.routers
        service = runtime.service
        assert isinstance(service, HttpRouter)
        self.service = service
        ((_, factory),) = service.servers
        assert isinstance(factory, HTTPServerFactory)
        self.factory = factory
        self.port: int = service.ports[0].getHost().port  # type: ignore[attr-defined]
        self.peak = 0

    def sample(self) -> None:
        self.peak = max([self.peak, *(pool.size for pool in self.pools)])

    def connect(self) -> Deferred[Client]:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        connected: Deferred[Client] = connectProtocol(endpoint, Client())
        return connected

    @inlineCallbacks
    def keepAlive(self, requests: int) -> Any:
        """C{requests} requests, on one connection while the server keeps it."""
        done = 0
        while done < requests:
            client = yield self.connect()
            while done < requests and not client.closed:
                yield client.request()
                done += 1
                if not client.responses[-1][1]:
                    yield client.lost
            client.transport.loseConnection()
            yield client.lost
            self.assertEqual({status for status, _ in client.responses}, {200})

    @inlineCallbacks
    def goneMidRequest(self, full: bool) -> Any:
        """Part of a request then a close, or a slow request then a reset."""
        client = yield self.connect()
        if full:
            client.transport.write(b"GET /slow HTTP/1.1\r\nHost: soak\r\n\r\n")
            yield deferLater(reactor, 0.01, lambda: None)
            client.transport.abortConnection()
        else:
            client.transport.write(b"GET /slow HTTP/1.1\r\nHo")
            client.transport.loseConnection()
        yield client.lost

    @inlineCallbacks
    def halfClose(self) -> Any:
        """
        Two pipelined requests, then a shutdown of the sending side: the
        client is gone, its requests are abandoned and the connection reaped.
        """
        client = yield self.connect()
        client.transport.write(b"GET /slow HTTP/1.1\r\nHost: soak\r\n\r\n" * 2)
        client.transport.loseWriteConnection()
        yield client.lost

    @inlineCallbacks
    def idle(self) -> Any:
        """Connects and sends nothing: the server session closes it."""
        client = yield self.connect()
        yield client.lost
        self.assertEqual(client.responses, [])

    def round(self) -> Deferred[Any]:
        work = [self.keepAlive(1) for _ in range(30)]
        work += [self.keepAlive(6) for _ in range(8)]
        work += [self.goneMidRequest(n % 2 == 0) for _ in range(6) for n in range(2)]
        work += [self.halfClose() for _ in range(4)]
        work += [self.idle() for _ in range(4)]
        return gatherResults(work, consumeErrors=True)

    @inlineCallbacks
    def waitFor(self, condition: Any, seconds: float = 10.0) -> Any:
        for _ in range(int(seconds / 0.02)):
            if condition():
                return
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail("condition not reached in time")

    @inlineCallbacks
    def quiet(self) -> Any:
        """Wait until every connection is reaped."""
        yield self.waitFor(lambda: not self.factory.connections)
        yield self.waitFor(lambda: all(pool.size == 0 for pool in self.pools))
        yield self.waitFor(lambda: not self.backend.connections)

    def ourMemory(self) -> tracemalloc.Snapshot:
        gc.collect()
        return tracemalloc.take_snapshot().filter_traces(
            [
                tracemalloc.Filter(True, os.path.dirname(module.__file__ or "") + "/*")
                for module in (linkrouter, protocols)
            ]
        )

    @inlineCallbacks
    def test_soak(self) -> Any:
        """
        Six rounds of 58 clients each; every client gets what it asked for;
        the pools never exceed C{maxSize}; after the rounds every connection
        is reaped (server sessions, pool idle time and lifetime), the file
        descriptors are back to where they were, and our modules hold no
        more memory after the last round than after the second.
        """
        yield deferLater(reactor, 0, lambda: None)  # the reactor is running
        baseline = openFds()
        sampler = LoopingCall(self.sample)
        sampler.start(0.005)
        self.addCleanup(lambda: sampler.stop() if sampler.running else None)
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = None
        for n in range(6):
            yield self.round()
            if n == 1:
                yield self.quiet()
                before = self.ourMemory()
        sampler.stop()
        self.assertEqual(self.service.inFlight, 0)
        self.assertTrue(self.pools)
        self.assertLessEqual(self.peak, MAX_SIZE)
        yield self.quiet()
        after = self.ourMemory()
        yield self.waitFor(lambda: len(openFds()) <= len(baseline))
        assert before is not None
        growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        self.assertLess(growth, 32 * 1024, after.compare_to(before, "lineno")[:10])
