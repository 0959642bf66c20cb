# -*- test-case-name: tests.test_thrift_plugin -*-
"""
The C{thrift} protocol plugin and the Thrift response classifier plugin.

The router runtime (L{protocols.thrift.router}) is imported when a router
is built, so that loading the dropin stays cheap.
"""

from __future__ import annotations

import attrs
from twisted.plugin import IPlugin
from zope.interface import implementer

from linkrouter.config import RouterConfig, Section
from linkrouter.context import BuildContext
from linkrouter.interfaces import (
    IProtocolPlugin,
    IResponseClassifier,
    IResponseClassifierPlugin,
    ResponseClass,
)

from .codec import Message, MessageType
from .config import (
    ThriftClientKeys,
    ThriftRouterConfig,
    ThriftServerConfig,
    parseClientConfig,
    parseRouterConfig,
    parseServerConfig,
)

CLASSIFIER_KIND = "linkrouter.thrift.exceptionsAsFailures"


@implementer(IResponseClassifier)
@attrs.frozen
class ThriftExceptions:
    """
    An EXCEPTION reply (a C{TApplicationException}, from the backend or a
    router downstream) is a failure, retryable only if configured; any
    other reply (including declared IDL exceptions, which travel in a
    REPLY) is a success.  No opinion on failures without a reply.
    """

    retryable: bool = False

    def classify(self, request: object, response: object, failure: object) -> object:
        if failure is not None:
            return None
        if isinstance(response, Message) and response.type is MessageType.EXCEPTION:
            if self.retryable:
                return ResponseClass.RETRYABLE_FAILURE
            return ResponseClass.NON_RETRYABLE_FAILURE
        return ResponseClass.SUCCESS


@implementer(IPlugin, IResponseClassifierPlugin)
@attrs.frozen
class ThriftClassifierPlugin:
    kind: str = CLASSIFIER_KIND
    protocol: str = "thrift"

    def parseConfig(self, section: object) -> object:
        assert isinstance(section, Section)
        return ThriftExceptions(section.get("retryable", bool, False) is True)

    def build(self, config: object, context: object) -> IResponseClassifier:
        assert isinstance(config, ThriftExceptions)
        return config


@implementer(IPlugin, IProtocolPlugin)
@attrs.frozen
class ThriftProtocolPlugin:
    """
    C{protocol: thrift}: default port 4114, names from the call (see
    L{protocols.thrift.identifier}), no configurable identifier.
    """

    kind: str = "thrift"
    defaultPort: int = 4114
    defaultIdentifier: object = None
    defaultClassifier: str = CLASSIFIER_KIND

    def parseConfig(self, section: object) -> ThriftRouterConfig:
        assert isinstance(section, Section)
        return parseRouterConfig(section)

    def parseServerConfig(self, section: object) -> ThriftServerConfig:
        assert isinstance(section, Section)
        return parseServerConfig(section)

    def parseClientConfig(self, section: object) -> ThriftClientKeys:
        assert isinstance(section, Section)
        return parseClientConfig(section)

    def parseServiceConfig(self, section: object) -> object:
        return None

    def buildRouter(self, config: object, context: object) -> object:
        from .router import ThriftRouter

        assert isinstance(config, RouterConfig) and isinstance(context, BuildContext)
        return ThriftRouter(config, context)


thriftProtocol = ThriftProtocolPlugin()
thriftExceptionsClassifier = ThriftClassifierPlugin()
