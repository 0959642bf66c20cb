# -*- test-case-name: tests.test_admin_delegator -*-
"""
C{/delegator.json}: explain how a router would bind a path.

C{GET ?namespace=<router label>&dtab=<dtab>&path=<path>}, or C{POST} of the
same keys as a JSON object.  C{dtab} is the complete dtab to delegate with
(the dashboard sends the router's dtab plus its edits); when it is absent
the router's own dtab is used.  Answers follow Linkerd: 400 C{Invalid dtab:
...} / C{Invalid path: ...} / C{Malformed delegation request: ...}, 415 for
a POST that is not JSON, 501 when the router's interpreter cannot explain
itself, 503 C{Request timed out.} after two seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import Resource
from twisted.web.server import Request

from linkrouter.interfaces import IDelegator

from ._resources import JSON, arg, respondLater, textBody


class RouterHandle(Protocol):
    """What the admin server needs to know of a router."""

    @property
    def label(self) -> str: ...

    @property
    def dtab(self) -> Any:
        """The router's L{linkrouter.naming.Dtab}."""

    @property
    def interpreter(self) -> object:
        """The router's interpreter; explains bindings if it provides L{IDelegator}."""


DELEGATE_TIMEOUT = 2.0


class DelegatorResource(Resource):
    """
    @param routers: router handles by label (the C{namespace} parameter;
        it may be left out when there is only one router).
    """

    isLeaf = True

    def __init__(
        self,
        routers: Mapping[str, RouterHandle],
        clock: IReactorTime,
        timeout: float = DELEGATE_TIMEOUT,
    ) -> None:
        super().__init__()
        self._routers = routers
        self._clock = clock
        self._timeout = timeout

    def render_GET(self, request: Request) -> object:
        return self._delegate(
            request, arg(request, "namespace"), arg(request, "dtab"), arg(request, "path")
        )

    def render_POST(self, request: Request) -> object:
        contentType = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if contentType != JSON.decode():
            return textBody(request, "Unsupported media type: send application/json", 415)
        assert request.content is not None
        body = request.content.read()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("dtab"), str)
            or not isinstance(document.get("path"), str)
            or not isinstance(document.get("namespace", ""), str | None)
        ):
            shown = body[:200].decode("utf-8", "replace")
            return textBody(request, f"Malformed delegation request: {shown}", 400)
        return self._delegate(
            request, document.get("namespace"), document["dtab"], document["path"]
        )

    def _delegate(
        self, request: Request, namespace: str | None, dtabText: str | None, pathText: str | None
    ) -> object:
        from linkrouter.naming import Dtab, Path, delegateJson

        if not namespace and len(self._routers) == 1:
            namespace = next(iter(self._routers))
        router = self._routers.get(namespace or "")
        if router is None:
            known = ", ".join(sorted(self._routers)) or "none"
            what = f"Unknown namespace: {namespace}" if namespace else "Missing namespace"
            return textBody(request, f"{what} (routers: {known})", 400)
        interpreter = router.interpreter
        if not IDelegator.providedBy(interpreter):
            return textBody(
                request, f"Name Interpreter for {namespace} cannot show delegations", 501
            )
        try:
            dtab = router.dtab if dtabText is None else Dtab.read(dtabText)
        except ValueError as e:
            return textBody(request, f"Invalid dtab: {e}", 400)
        try:
            path = Path.read(pathText or "")
        except ValueError as e:
            return textBody(request, f"Invalid path: {e}", 400)

        def render(tree: Any) -> bytes:
            request.setHeader(b"content-type", JSON)
            return json.dumps(delegateJson(tree)).encode()

        result: Deferred[bytes] = maybeDeferred(interpreter.delegate, dtab, path).addCallback(
            render
        )
        return respondLater(request, result, self._clock, self._timeout)
