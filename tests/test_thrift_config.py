"""
Tests for L{protocols.thrift.config} in C{io.l5d.static} client
configurations: the Thrift client keys of every matching entry are laid over
each other key by key, as in Linkerd.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import ClientParams, parseLinkerConfig
from linkrouter.interfaces import IProtocolPlugin
from linkrouter.naming import Path
from protocols.thrift.codec import DEFAULT_MAX_MESSAGE_SIZE, ThriftProtocol
from protocols.thrift.config import ThriftClientConfig, ThriftClientKeys, ThriftRouterConfig
from protocols.thrift.plugin import thriftProtocol

REGISTRY = PluginRegistry.fromProviders([(IProtocolPlugin, thriftProtocol, "test")])

STATIC = """
routers:
- protocol: thrift
  thriftProtocol: compact
  client:
    kind: io.l5d.static
    configs:
    - prefix: /
      thriftFramed: false
      attemptTTwitterUpgrade: true
      thriftMaxMessageBytes: 4096
    - prefix: /$/inet/*/1
      requestAttemptTimeoutMs: 250
    - prefix: /$/inet/{host}/2
      thriftProtocol: binary
      socketOptions: {noDelay: false}
    - prefix: /$/inet/127.0.0.1/2
      thriftFramed: true
      socketOptions: {keepAlive: true}
"""


class StaticClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        router = parseLinkerConfig(STATIC, "l.yaml", REGISTRY).routers[0]
        self.client = router.client
        config = router.protocolConfig
        assert isinstance(config, ThriftRouterConfig)
        self.routerConfig = config

    def params(self, path: str) -> ClientParams:
        return self.client.forPath(Path.read(path))

    def resolved(self, params: ClientParams) -> ThriftClientConfig:
        keys = params.protocol
        assert isinstance(keys, ThriftClientKeys)
        return keys.resolve(self.routerConfig)

    def test_laterEntryWithoutThriftKeys(self) -> None:
        """
        An entry that sets only C{requestAttemptTimeoutMs} keeps the Thrift
        keys of the earlier entry (the framing put on the wire, among
        others), and the router's C{thriftProtocol} where none is set.
        """
        params = self.params("/$/inet/10.0.0.1/1")
        self.assertEqual(params.requestAttemptTimeoutMs, 250)
        self.assertEqual(
            self.resolved(params),
            ThriftClientConfig(
                framed=False,
                protocol=ThriftProtocol.COMPACT,
                maxMessageBytes=4096,
                attemptTTwitterUpgrade=True,
            ),
        )

    def test_laterEntriesOverrideTheirKeys(self) -> None:
        """
        Each later entry overrides only the keys it sets, while a nested
        section such as C{socketOptions} is still replaced whole.
        """
        params = self.params("/$/inet/127.0.0.1/2")
        self.assertIsNone(params.requestAttemptTimeoutMs)
        self.assertEqual(
            self.resolved(params),
            ThriftClientConfig(
                framed=True,
                protocol=ThriftProtocol.BINARY,
                maxMessageBytes=4096,
                attemptTTwitterUpgrade=True,
            ),
        )
        socket = params.socketOptions
        assert socket is not None
        self.assertEqual((socket.noDelay, socket.keepAlive), (True, True))
        other = self.params("/$/inet/10.0.0.1/2")
        self.assertFalse(self.resolved(other).framed)
        self.assertIs(self.resolved(other).protocol, ThriftProtocol.BINARY)

    def test_noEntrySetsAKey(self) -> None:
        """Keys no matching entry sets take their defaults."""
        parsed = parseLinkerConfig(
            """
routers:
- protocol: thrift
  client:
    kind: io.l5d.static
    configs:
    - {prefix: /, requestAttemptTimeoutMs: 1}
    - {prefix: /$, failFast: true}
""",
            "l.yaml",
            REGISTRY,
        )
        router = parsed.routers[0]
        params = router.client.forPath(Path.read("/$/inet/a/1"))
        keys = params.protocol
        assert isinstance(keys, ThriftClientKeys)
        self.assertEqual(keys, ThriftClientKeys())
        self.assertEqual(
            keys.resolve(None),
            ThriftClientConfig(True, ThriftProtocol.BINARY, DEFAULT_MAX_MESSAGE_SIZE, False),
        )
