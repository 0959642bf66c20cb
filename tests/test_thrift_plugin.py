"""
Tests for L{protocols.thrift.plugin} and L{protocols.thrift.config}: the
keys of a C{protocol: thrift} router, and the Thrift response classifier.
"""

from __future__ import annotations

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from linkrouter._plugins import PluginRegistry
from linkrouter.config import ConfigError, LinkerConfig, parseLinkerConfig
from linkrouter.interfaces import (
    IProtocolPlugin,
    IResponseClassifier,
    IResponseClassifierPlugin,
    ResponseClass,
)
from linkrouter.naming import Path
from protocols.thrift.codec import Message, MessageType, ThriftProtocol
from protocols.thrift.config import (
    ThriftClientConfig,
    ThriftClientKeys,
    ThriftRouterConfig,
    ThriftServerConfig,
)
from protocols.thrift.plugin import ThriftExceptions, thriftExceptionsClassifier, thriftProtocol

REGISTRY = PluginRegistry.fromProviders(
    [
        (IProtocolPlugin, thriftProtocol, "test"),
        (IResponseClassifierPlugin, thriftExceptionsClassifier, "test"),
    ]
)


def parse(text: str) -> LinkerConfig:
    return parseLinkerConfig(text, "l.yaml", REGISTRY)


class ConfigTests(SynchronousTestCase):
    def test_providers(self) -> None:
        self.assertTrue(verifyObject(IProtocolPlugin, thriftProtocol))
        self.assertTrue(verifyObject(IResponseClassifierPlugin, thriftExceptionsClassifier))

    def test_defaults(self) -> None:
        router = parse("routers:\n- protocol: thrift\n").routers[0]
        self.assertEqual(router.protocolConfig, ThriftRouterConfig())
        self.assertEqual(router.servers[0].port, 4114)
        self.assertEqual(router.servers[0].protocol, ThriftServerConfig())

    def test_keys(self) -> None:
        router = parse(
            """
routers:
- protocol: thrift
  thriftMethodInDst: true
  thriftProtocol: compact
  servers:
  - port: 4004
    thriftFramed: false
    thriftMaxMessageBytes: 1000
  client:
    thriftFramed: false
    thriftProtocol: binary
    attemptTTwitterUpgrade: true
"""
        ).routers[0]
        config = router.protocolConfig
        self.assertEqual(config, ThriftRouterConfig(True, ThriftProtocol.COMPACT))
        server = router.servers[0].protocol
        self.assertEqual(server, ThriftServerConfig(False, None, 1000))
        assert isinstance(config, ThriftRouterConfig)
        assert isinstance(server, ThriftServerConfig)
        self.assertIs(server.wireProtocol(config), ThriftProtocol.COMPACT)
        client = router.client.forPath(Path.read("/svc/x")).protocol
        assert isinstance(client, ThriftClientKeys)
        self.assertEqual(
            client.resolve(config),
            ThriftClientConfig(False, ThriftProtocol.BINARY, attemptTTwitterUpgrade=True),
        )

    def test_badValues(self) -> None:
        e = self.assertRaises(
            ConfigError,
            parse,
            "routers:\n- protocol: thrift\n  thriftProtocol: json\n"
            "  servers:\n  - thriftFramed: 3\n",
        )
        self.assertIn("expected binary or compact, got 'json'", str(e))
        self.assertIn("servers[0].thriftFramed: expected a boolean", str(e))


class ClassifierTests(SynchronousTestCase):
    def test_classify(self) -> None:
        exc = Message("m", MessageType.EXCEPTION, 1, b"")
        ok = Message("m", MessageType.REPLY, 1, b"")
        c = ThriftExceptions()
        self.assertTrue(verifyObject(IResponseClassifier, c))
        self.assertEqual(c.classify(None, exc, None), ResponseClass.NON_RETRYABLE_FAILURE)
        self.assertEqual(c.classify(None, ok, None), ResponseClass.SUCCESS)
        self.assertEqual(c.classify(None, None, None), ResponseClass.SUCCESS)
        self.assertIsNone(c.classify(None, None, Failure(RuntimeError())))
        self.assertEqual(
            ThriftExceptions(retryable=True).classify(None, exc, None),
            ResponseClass.RETRYABLE_FAILURE,
        )
