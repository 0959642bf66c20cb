# -*- test-case-name: tests.test_thrift_server -*-
"""
What the Thrift server hands to the router: the call, and its name.

C{dst = dstPrefix ++ dest ++ suffix}: C{dest} is the TTwitter header's
destination path; the suffix comes from the method name: C{Service:method}
(multiplexed) gives C{/Service}, or C{/Service/method} with
C{thriftMethodInDst}; any other name gives C{/method} with
C{thriftMethodInDst}, else nothing.

L{Identified} and L{Unidentified} are the router core's.
"""

from __future__ import annotations

import re

import attrs
from zope.interface import implementer

from linkrouter.interfaces import IIdentifier
from linkrouter.naming import Dtab, ParseError, Path
from linkrouter.routing.identification import Identified, Unidentified

from .codec import Message, MessageType
from .ttwitter import RequestHeader

_LABEL = re.compile(r"[0-9A-Za-z_:.#$%\-]+\Z")
_CACHE_SIZE = 1024


@attrs.frozen
class ThriftCall:
    """
    One inbound call: the message as received, and the TTwitter request
    header that preceded it on an upgraded connection.
    """

    message: Message
    header: RequestHeader | None = None

    @property
    def oneway(self) -> bool:
        return self.message.type is MessageType.ONEWAY


@implementer(IIdentifier)
@attrs.frozen
class ThriftIdentifier:
    """Names calls as Linkerd's thrift router does."""

    dstPrefix: Path
    methodInDst: bool = False
    _plain: dict[str, Identified | Unidentified] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )

    def identify(self, request: object) -> Identified | Unidentified:
        assert isinstance(request, ThriftCall)
        if request.header is not None:
            return self._identify(request.message.name, request.header)
        # Without a TTwitter header the name depends on the method only.
        name = request.message.name
        found = self._plain.get(name)
        if found is None:
            if len(self._plain) >= _CACHE_SIZE:
                self._plain.clear()
            found = self._plain[name] = self._identify(name, None)
        return found

    def _identify(self, name: str, header: RequestHeader | None) -> Identified | Unidentified:
        parts = name.split(":")
        if len(parts) == 2:
            labels = parts if self.methodInDst else parts[:1]
        else:
            labels = [name] if self.methodInDst else []
        for label in labels:
            if not _LABEL.match(label):
                return Unidentified(f"method name {name!r} is not a valid path label")
        try:
            dest = header.destPath() if header is not None else Path()
            localDtab = header.localDtab() if header is not None else Dtab.empty()
        except ParseError as e:
            return Unidentified(f"invalid TTwitter header: {e}")
        return Identified(self.dstPrefix + dest + Path.of(*labels), localDtab)
