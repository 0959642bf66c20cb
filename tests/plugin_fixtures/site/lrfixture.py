"""
Out-of-tree linkrouter plugins, as a third party would ship them: a static
namer, an interpreter over the configured namers, and C{test.line}, a
line-based protocol whose requests are C{bind NAME} (answered with the
addresses C{dstPrefix/NAME} binds to), C{hold} (answered when the test
releases it) and C{ping}.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

from linkrouter.context import IDrainable
from linkrouter.interfaces import IInterpreterPlugin, INamer, INamerPlugin, IProtocolPlugin
from linkrouter.naming import NEG, Activity, AddrBound, Address, Bound, Leaf, Path, Var
from linkrouter.naming.interpreter import ConfiguredNamersInterpreter


@implementer(INamer)
class StaticNamer:
    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def lookup(self, path: Any) -> Any:
        if not path.elems or path.elems[0].decode() not in self.names:
            return Activity.value(NEG)
        name = path.elems[0].decode()
        addresses = frozenset(
            Address(hp.rsplit(":", 1)[0], int(hp.rsplit(":", 1)[1])) for hp in self.names[name]
        )
        return Activity.value(
            Leaf(Bound(Path.of("#", "test.static", name), Var(AddrBound(addresses)), path.drop(1)))
        )


@implementer(INamerPlugin)
class StaticNamerPlugin:
    kind = "test.static"
    defaultPrefix = "/test.static"

    def parseConfig(self, section: Any) -> Any:
        names = section.get("names", dict, {})
        for name, addresses in (names or {}).items():
            if not isinstance(addresses, list) or not all(
                isinstance(a, str) and ":" in a for a in addresses
            ):
                section.error(f"{name}: expected a list of host:port", "names")
        return names

    def build(self, config: Any, context: Any) -> StaticNamer:
        return StaticNamer(config)


@implementer(IInterpreterPlugin)
class ConfiguredInterpreterPlugin:
    kind = "test.configured"

    def parseConfig(self, section: Any) -> None:
        return None

    def build(self, config: Any, context: Any) -> Any:
        return ConfiguredNamersInterpreter(context.namers, resolver=lambda host: succeed([host]))


class _LineProtocol(LineReceiver):
    delimiter = b"\n"

    def __init__(self, router: LineRouter) -> None:
        self.router = router

    def connectionMade(self) -> None:
        self.router.connections.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.router.connections.discard(self)

    def lineReceived(self, line: bytes) -> None:
        if self.router.draining:
            self.sendLine(b"closing")
            return
        command, _, arg = line.decode().partition(" ")
        self.router.inFlight += 1
        d: Deferred[str]
        if command == "ping":
            d = Deferred()
            d.callback(f"pong {self.router.config.label} {self.router.config.protocolConfig}")
        elif command == "hold":
            d = Deferred()
            self.router.held.append(d)
        elif command == "bind":
            d = self.router.bind(arg)
        else:
            d = Deferred()
            d.callback("error unknown command")
        d.addCallback(lambda reply: self.sendLine(reply.encode()))
        d.addBoth(self.router.finished)


@implementer(IDrainable)
class LineRouter(Service):
    def __init__(self, config: Any, context: Any) -> None:
        self.config = config
        self.context = context
        self.ports: list[Any] = []
        self.connections: set[_LineProtocol] = set()
        self.held: list[Deferred[str]] = []
        self.inFlight = 0
        self.draining = False
        self._idle: list[Deferred[None]] = []

    def startService(self) -> None:
        factory = Factory.forProtocol(lambda: _LineProtocol(self))
        for server in self.config.servers:
            self.ports.append(
                self.context.reactor.listenTCP(server.port, factory, interface=server.ip)
            )
        Service.startService(self)

    def bind(self, name: str) -> Deferred[str]:
        path = self.config.dstPrefix + Path.of(name)
        activity = self.context.interpreter.bind(self.config.dtab, path)

        def show(tree: Any) -> str:
            leaves = tree.eval()
            if not leaves:
                return "neg"
            addrs = sorted(f"{a.host}:{a.port}" for b in leaves for a in b.addr.sample().addresses)
            return "bound " + ",".join(addrs)

        ready: Deferred[Any] = activity.whenReady()
        return ready.addCallback(show)

    def release(self) -> None:
        held, self.held = self.held, []
        for d in held:
            d.callback("released")

    def finished(self, result: object) -> None:
        self.inFlight -= 1
        if self.inFlight == 0:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def drain(self) -> Deferred[None]:
        self.draining = True
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()
        d: Deferred[None] = Deferred(lambda d: self._idle.remove(d))
        if self.inFlight == 0:
            d.callback(None)
        else:
            self._idle.append(d)
        return d

    def stopService(self) -> None:
        Service.stopService(self)
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.loseConnection()


@implementer(IProtocolPlugin)
class LineProtocolPlugin:
    kind = "test.line"
    defaultPort = 4199
    defaultIdentifier = None
    defaultClassifier = None

    def parseConfig(self, section: Any) -> Any:
        return section.get("greeting", str, "hello")

    def parseServerConfig(self, section: Any) -> None:
        return None

    def parseClientConfig(self, section: Any) -> None:
        return None

    def parseServiceConfig(self, section: Any) -> None:
        return None

    def buildRouter(self, config: Any, context: Any) -> LineRouter:
        return LineRouter(config, context)


staticNamer = StaticNamerPlugin()
configuredInterpreter = ConfiguredInterpreterPlugin()
lineProtocol = LineProtocolPlugin()
