"""
Integration test: a balancer over three real backends on loopback, speaking
a one-line protocol.  Each backend in turn starts refusing connections,
answering errors, or answering too slowly; traffic moves away from it, and
comes back once it heals.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from linkrouter.client.accrual import AccrualConfig, AccrualFactory
from linkrouter.client.balancer import ClientPolicy
from linkrouter.client.errors import ConnectionFailed
from linkrouter.client.plugins import BalancerConfig, balancerFactory
from linkrouter.client.timeout import AttemptTimeout
from linkrouter.config import Backoff
from linkrouter.interfaces import IClient, ResponseClass, Status
from linkrouter.naming import AddrBound, Address, Var
from linkrouter.telemetry.stats import MetricsRegistry

reactor: Any = _reactor

BACKOFF_MS = 200
SLOW_SECONDS = 1.0
ATTEMPT_TIMEOUT = 0.3
LOST = Failure(ConnectionError("connection lost"))


class BackendProtocol(LineReceiver):
    delimiter = b"\n"

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self.pending: IDelayedCall | None = None
        self.lost: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        backend = self.factory
        backend.received += 1
        if backend.mode == "error":
            self.sendLine(b"ERR")
        elif backend.mode == "slow":
            self.pending = reactor.callLater(SLOW_SECONDS, self.sendLine, b"OK")
        else:
            self.sendLine(b"OK")

    def connectionLost(self, reason: Failure = LOST) -> None:
        if self.pending is not None and self.pending.active():
            self.pending.cancel()
        self.factory.connections.discard(self)
        self.lost.callback(None)


class Backend(Factory):
    protocol = BackendProtocol

    def __init__(self) -> None:
        self.mode = "ok"
        self.received = 0
        self.connections: set[BackendProtocol] = set()
        self.port: IListeningPort | None = None
        self.portNumber = 0

    def listen(self) -> None:
        self.port = reactor.listenTCP(self.portNumber, self, interface="127.0.0.1")
        self.portNumber = self.port.getHost().port  # type: ignore[union-attr]

    def stop(self) -> Deferred[Any]:
        port, self.port = self.port, None
        return port.stopListening() if port is not None else Deferred()  # type: ignore[return-value]


class ClientProtocol(LineReceiver):
    delimiter = b"\n"

    def __init__(self) -> None:
        self.response: Deferred[bytes] = Deferred(lambda d: self.abort())
        self.lost: Deferred[None] = Deferred()

    def abort(self) -> None:
        assert self.transport is not None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def lineReceived(self, line: bytes) -> None:
        if not self.response.called:
            self.response.callback(line)
        assert self.transport is not None
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = LOST) -> None:
        if not self.response.called:
            self.response.errback(reason)
        self.lost.callback(None)


@implementer(IClient)
class LineClient:
    """A connection per request: send one line, read one line."""

    status = Status.OPEN

    def __init__(self, address: Address) -> None:
        self.endpoint = TCP4ClientEndpoint(reactor, address.host, address.port, timeout=2)
        self.active: set[ClientProtocol] = set()

    def __call__(self, request: bytes) -> Deferred[bytes]:
        def connected(proto: ClientProtocol) -> Deferred[bytes]:
            self.active.add(proto)
            proto.lost.addCallback(lambda _: self.active.discard(proto))
            proto.sendLine(request)
            return proto.response

        def refused(f: Failure) -> Failure:
            f.trap(ConnectError)
            return Failure(ConnectionFailed(str(f.value)))

        d: Deferred[bytes] = connectProtocol(self.endpoint, ClientProtocol())
        return d.addCallbacks(connected, refused)

    def close(self) -> Deferred[Any]:
        for proto in self.active:
            proto.abort()
        return DeferredList([p.lost for p in self.active])


def classify(request: object, response: object, failure: Failure | None) -> ResponseClass:
    if failure is None and response == b"OK":
        return ResponseClass.SUCCESS
    return ResponseClass.NON_RETRYABLE_FAILURE


class ThreeBackendsTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.backends = [Backend() for _ in range(3)]
        for b in self.backends:
            b.listen()
        self.registry = MetricsRegistry()
        rng = random.Random(5)
        accrual = AccrualConfig(failures=3, backoff=Backoff("constant", BACKOFF_MS, BACKOFF_MS))
        addr = AddrBound(frozenset(Address("127.0.0.1", b.portNumber) for b in self.backends))
        self.balancer = balancerFactory(BalancerConfig("p2c"), reactor, rng).build(
            Var(addr),
            lambda a: AttemptTimeout(LineClient(a), ATTEMPT_TIMEOUT, reactor),
            self.registry.statsReceiver(),
            ClientPolicy(accrual=AccrualFactory(accrual, reactor, rng), classify=classify),
        )

    @inlineCallbacks
    def tearDown(self) -> Any:  # type: ignore[override]
        yield self.balancer.close()
        yield DeferredList([b.stop() for b in self.backends if b.port is not None])
        yield DeferredList([c.lost for b in self.backends for c in list(b.connections)])

    @inlineCallbacks
    def send(self, n: int, concurrency: int = 3) -> Any:
        """Send C{n} requests, C{concurrency} at a time; return the outcomes."""
        outcomes: list[Any] = []
        for _ in range(n // concurrency):
            batch = [
                self.balancer(b"hello").addErrback(lambda f: f.value) for _ in range(concurrency)
            ]
            outcomes.extend((yield DeferredList(batch, consumeErrors=True)))  # type: ignore[misc]
        return [result for _, result in outcomes]  # type: ignore[misc]

    def sleep(self, seconds: float) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        reactor.callLater(seconds, d.callback, None)
        return d

    @inlineCallbacks
    def degradeAndHeal(self, backend: Backend, mode: str) -> Any:
        yield self.send(30)
        self.assertGreater(backend.received, 0, "every backend takes traffic at first")
        if mode == "refusing":
            yield backend.stop()
        else:
            backend.mode = mode
        # Moving away: a few requests may fail while accrual notices.
        yield self.send(30)
        before = backend.received
        results = yield self.send(30)
        self.assertEqual(results.count(b"OK"), 30, f"{mode}: traffic moved away")
        self.assertLessEqual(backend.received - before, 1, f"{mode}: at most a probe")
        # Healing: once the backoff expires, a probe revives it.
        if mode == "refusing":
            backend.listen()
        backend.mode = "ok"
        yield self.sleep(2 * BACKOFF_MS / 1000)
        before = backend.received
        results = yield self.send(60)
        self.assertEqual(results.count(b"OK"), 60)
        self.assertGreater(backend.received - before, 5, f"{mode}: traffic came back")

    @inlineCallbacks
    def test_degradeAndHeal(self) -> Any:
        refusing, erroring, slow = self.backends
        yield self.degradeAndHeal(refusing, "refusing")
        self.assertGreater(self.registry.counter(("retries", "requeues")).value, 0)
        yield self.degradeAndHeal(erroring, "error")
        yield self.degradeAndHeal(slow, "slow")
        removals = self.registry.counter(("failure_accrual", "removals")).value
        revivals = self.registry.counter(("failure_accrual", "revivals")).value
        self.assertGreaterEqual(removals, 2)
        self.assertEqual(removals, revivals)
