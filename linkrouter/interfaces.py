# -*- test-case-name: tests.test_plugins -*-
"""
Every zope.interface that linkrouter defines, in one place.

Two families live here:

 - B{plugin interfaces} (subclasses of L{IKindPlugin}): what a dropin in
   C{twisted/plugins/} provides.  Each provider has a C{kind} (for routers:
   the C{protocol:} value), parses its own configuration section with
   L{linkrouter.config.Section}, and builds its runtime object.  Built-ins
   register through dropins exactly like third-party plugins.

 - B{runtime interfaces}: what those builds return (L{IClient}, L{INamer},
   L{IInterpreter}, L{IIdentifier}, ...).

Runtime values such as L{linkrouter.naming.Path} or
L{linkrouter.naming.Activity} are plain classes and are documented where they
are defined; the interfaces below mention them by name only.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from linkrouter.naming import Activity, Bound, NameTree


class Status(enum.Enum):
    """
    Availability of an L{IClient}: C{OPEN} takes requests, C{BUSY} would
    queue them, C{CLOSED} will never take one again.
    """

    OPEN = "open"
    BUSY = "busy"
    CLOSED = "closed"


class ResponseClass(enum.Enum):
    """
    What a response classifier says of one request/response pair.
    """

    SUCCESS = "success"
    RETRYABLE_FAILURE = "retryable_failure"
    NON_RETRYABLE_FAILURE = "non_retryable_failure"

    @property
    def isSuccess(self) -> bool:
        return self is ResponseClass.SUCCESS

    @property
    def isRetryable(self) -> bool:
        return self is ResponseClass.RETRYABLE_FAILURE


# --------------------------------------------------------------------------
# Runtime interfaces


class IClient(Interface):
    """
    A service: takes a request, returns a Deferred that fires with the
    response (Finagle's C{Service}).  Protocol-neutral; the request and
    response types belong to the protocol.
    """

    status = Attribute("The client's current L{Status}.")

    def __call__(request: Any) -> Deferred[Any]:
        """
        Send C{request}; return a C{Deferred} firing with the response.
        Cancelling that Deferred abandons the request.
        """

    def close() -> Deferred[Any]:
        """
        Stop taking requests and release resources; return a C{Deferred}
        that fires with C{None} once closed.
        """


class INamer(Interface):
    """
    Resolves paths under its prefix (C{/#/<prefix>}) to name trees.
    """

    def lookup(path: Any) -> Activity[NameTree[Any]]:
        """
        @param path: a L{linkrouter.naming.Path} with the namer's prefix
            already removed.
        @return: an L{linkrouter.naming.Activity} of a
            L{linkrouter.naming.NameTree} whose leaves are
            L{linkrouter.naming.Path} (to be bound further) or
            L{linkrouter.naming.Bound} names.
        """


class IInterpreter(Interface):
    """
    Binds a path through a dtab to a tree of bound names.
    """

    def bind(dtab: Any, path: Any) -> Activity[NameTree[Bound]]:
        """
        @return: an L{linkrouter.naming.Activity} of a
            L{linkrouter.naming.NameTree} of L{linkrouter.naming.Bound}.
        """


class IDelegator(Interface):
    """
    An interpreter that can explain a binding step by step
    (C{/delegator.json}).
    """

    def delegate(dtab: Any, path: Any) -> Deferred[Any]:
        """
        @return: a C{Deferred} firing with a
            L{linkrouter.naming.DelegateTree}.
        """


class ITransformer(Interface):
    """
    Rewrites a bound tree, for example to keep only local endpoints.
    """

    def transform(tree: NameTree[Bound]) -> Activity[NameTree[Bound]]:
        """
        @param tree: a L{linkrouter.naming.NameTree} of
            L{linkrouter.naming.Bound}.
        @return: an L{linkrouter.naming.Activity} of the transformed tree.
        """


class IIdentifier(Interface):
    """
    Names a request: turns it into a destination path.
    """

    def identify(request: object) -> object:
        """
        @return: an L{linkrouter.routing.Identified} or
            L{linkrouter.routing.Unidentified}, or a C{Deferred} of one.
        """


class IResponseClassifier(Interface):
    """
    Decides whether a request/response pair succeeded and whether it may be
    retried.
    """

    def classify(request: object, response: object, failure: object) -> object:
        """
        @param response: the response, or C{None} if the request failed.
        @param failure: a L{twisted.python.failure.Failure}, or C{None}.
        @return: a L{ResponseClass}, or C{None} when this classifier has no
            opinion (the next classifier, or the default, decides).
        """


class ICounter(Interface):
    value = Attribute(
        "The count so far.  C{counter.value += n} is C{counter.incr(n)}"
        " without the call, for code on every request's path."
    )

    def incr(delta: int = 1) -> None:
        """Add C{delta} to the counter."""


class IHistogram(Interface):
    def add(value: float) -> None:
        """Record one observation."""


class IGauge(Interface):
    def remove() -> None:
        """Stop exporting this gauge."""


class IStatsReceiver(Interface):
    """
    Where metrics are recorded.  Names are joined with C{/} into Finagle's
    flat names (C{rt/http/service/svc/foo/requests}).  Creating a metric
    that exists returns the existing one; recording never blocks and never
    waits for a reader.
    """

    def scope(*names: str) -> IStatsReceiver:
        """A receiver whose metric names are prefixed with C{names}."""

    def counter(*names: str) -> ICounter:
        """The counter with this name, created on first use."""

    def histogram(*names: str) -> IHistogram:
        """The histogram with this name, created on first use."""

    def addGauge(name: tuple[str, ...], fn: object) -> IGauge:
        """Export C{fn()} (a float) under C{name} until removed."""


class ITelemeter(Interface):
    """
    Exports metrics or traces somewhere.
    """

    def service() -> object:
        """
        An C{IService} to add to the router's service tree, or C{None}.
        """

    def adminResources() -> object:
        """
        A mapping of admin path (C{"admin/metrics/prometheus"}) to a
        C{twisted.web.resource.IResource}, possibly empty.
        """


class IBalancer(IClient):
    """
    A client that spreads requests over a changing set of endpoints.
    """

    def endpointStates() -> object:
        """
        A list of JSON-ready mappings, one per endpoint, for
        C{/client_state.json}.
        """


class IBalancerFactory(Interface):
    def build(endpoints: object, connect: object, stats: IStatsReceiver) -> IBalancer:
        """
        @param endpoints: a L{linkrouter.naming.Var} of the current
            L{linkrouter.naming.Addr}.
        @param connect: a callable taking a L{linkrouter.naming.Address}
            and returning an L{IClient} for that endpoint.
        """


# --------------------------------------------------------------------------
# Plugin interfaces


class IKindPlugin(IPlugin):
    """
    Common shape of every linkrouter plugin.
    """

    kind = Attribute(
        "The C{kind:} value this plugin answers to (for protocols, the C{protocol:} value)."
    )

    def parseConfig(section: object) -> object:
        """
        Read this plugin's keys from C{section} (a
        L{linkrouter.config.Section}) and return a configuration value.
        Problems are reported through the section, never raised; unread
        keys are reported as unknown by the caller.
        """


class IProtocolPlugin(IKindPlugin):
    """
    A router protocol (C{protocol: http}).
    """

    defaultPort = Attribute("Server port used when C{servers} is absent.")
    defaultIdentifier = Attribute(
        "Identifier configuration used when a router has none, e.g. "
        "C{{'kind': 'io.l5d.header.token'}}, or C{None}."
    )
    defaultClassifier = Attribute(
        "Response classifier kind used when a service has none, or C{None}."
    )

    def parseServerConfig(section: object) -> object:
        """Read protocol-specific keys of one C{servers[]} entry."""

    def parseClientConfig(section: object) -> object:
        """Read protocol-specific keys of a client configuration."""

    def parseServiceConfig(section: object) -> object:
        """Read protocol-specific keys of a service configuration."""

    def buildRouter(config: object, context: object) -> object:
        """
        Build the router runtime (an C{IService} whose children listen on the
        configured servers) from the parsed router configuration.
        """


class INamerPlugin(IKindPlugin):
    defaultPrefix = Attribute("Default prefix, e.g. C{'/io.l5d.fs'}.")

    def build(config: object, context: object) -> INamer:
        """Build the namer."""


class IInterpreterPlugin(IKindPlugin):
    def build(config: object, context: object) -> IInterpreter:
        """Build the interpreter."""


class ITransformerPlugin(IKindPlugin):
    def build(config: object, context: object) -> ITransformer:
        """Build the transformer."""


class IIdentifierPlugin(IKindPlugin):
    protocol = Attribute("The protocol this identifier applies to.")

    def build(config: object, context: object) -> IIdentifier:
        """Build the identifier."""


class IResponseClassifierPlugin(IKindPlugin):
    protocol = Attribute("The protocol this classifier applies to.")

    def build(config: object, context: object) -> IResponseClassifier:
        """Build the classifier."""


class ITelemeterPlugin(IKindPlugin):
    def build(config: object, context: object) -> ITelemeter:
        """Build the telemeter."""


class ILoadBalancerPlugin(IKindPlugin):
    def build(config: object, context: object) -> IBalancerFactory:
        """Build a balancer factory."""


class IFailureAccrualPlugin(IKindPlugin):
    def build(config: object, context: object) -> object:
        """
        Build a failure accrual policy factory: a callable returning a fresh
        L{linkrouter.client.accrual.AccrualPolicy} for each endpoint.
        """


PLUGIN_INTERFACES: tuple[type[IKindPlugin], ...] = (
    IProtocolPlugin,
    INamerPlugin,
    IInterpreterPlugin,
    ITransformerPlugin,
    IIdentifierPlugin,
    IResponseClassifierPlugin,
    ITelemeterPlugin,
    ILoadBalancerPlugin,
    IFailureAccrualPlugin,
)
"""Every plugin seam, for the registry and for C{linkrouter plugins}."""
