"""
Tests for L{protocols.http.identifiers}.
"""

from __future__ import annotations

from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from linkrouter.interfaces import IIdentifier, IIdentifierPlugin
from linkrouter.naming import Dtab, Path
from linkrouter.routing import Identified, Unidentified
from protocols.http import headers as l5d
from protocols.http.identifiers import (
    IDENTIFIER_PLUGINS,
    HeaderPathIdentifier,
    HeaderTokenIdentifier,
    IdentifierChain,
    MethodAndHostIdentifier,
    PathIdentifier,
    StaticIdentifier,
)
from protocols.http.message import Headers, Request


def req(uri: bytes = b"/", version: bytes = b"1.1", **headers: str) -> Request:
    hs = Headers([(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()])
    return Request(b"GET", uri, hs, version=version)


def dst(ident: object, request: Request) -> Path:
    result = ident.identify(request)  # type: ignore[attr-defined]
    assert isinstance(result, Identified), result
    return result.dst


class IdentifierTests(SynchronousTestCase):
    def test_headerToken(self) -> None:
        ident = HeaderTokenIdentifier()
        self.assertEqual(ident.identify(req(Host="web:80")), Identified(Path.read("/svc/web:80")))
        self.assertIsInstance(ident.identify(req()), Unidentified)

    def test_methodAndHost(self) -> None:
        ident = MethodAndHostIdentifier()
        self.assertEqual(dst(ident, req(b"/a/b", Host="Web")), Path.read("/svc/1.1/GET/web"))
        self.assertEqual(dst(ident, req(version=b"1.0")), Path.read("/svc/1.0/GET"))
        withUri = MethodAndHostIdentifier(httpUriInDst=True, dstPrefix=Path.read("/http"))
        self.assertEqual(
            dst(withUri, req(b"/a/b?q=1", Host="web")), Path.read("/http/1.1/GET/web/a/b")
        )
        self.assertIsInstance(ident.identify(req()), Unidentified)

    def test_path(self) -> None:
        ident = PathIdentifier(segments=2, consume=True)
        result = ident.identify(req(b"/true/love/waits.php?x=1"))
        assert isinstance(result, Identified)
        self.assertEqual(result.dst, Path.read("/svc/true/love"))
        assert isinstance(result.request, Request)
        self.assertEqual(result.request.uri, b"/waits.php?x=1")
        self.assertEqual(PathIdentifier().identify(req(b"/a/b")), Identified(Path.read("/svc/a")))
        self.assertIsInstance(ident.identify(req(b"/one")), Unidentified)

    def test_headerPath(self) -> None:
        ident = HeaderPathIdentifier()
        self.assertEqual(dst(ident, req(l5d_name="/a/b")), Path.read("/svc/a/b"))
        bad = ident.identify(req(l5d_name="nope"))
        assert isinstance(bad, Unidentified)
        self.assertIn("not a path", bad.reason)

    def test_static(self) -> None:
        self.assertEqual(
            dst(StaticIdentifier(Path.read("/foo/bar")), req()), Path.read("/svc/foo/bar")
        )

    def test_chainTriesInOrderWithLocalDtab(self) -> None:
        chain = IdentifierChain((HeaderPathIdentifier(), HeaderTokenIdentifier()))
        request = req(Host="web", l5d_dtab="/svc/web => /svc/web2")
        result = chain.identify(request)
        self.assertEqual(
            result, Identified(Path.read("/svc/web"), Dtab.read("/svc/web => /svc/web2"))
        )
        self.assertEqual(request.headers.get(b"l5d-ctx-dtab"), b"/svc/web => /svc/web2")
        self.assertIsNone(request.headers.get(b"l5d-dtab"))
        nothing = chain.identify(req())
        assert isinstance(nothing, Unidentified)
        self.assertIn("l5d-name", nothing.reason)
        self.assertIn("Host", nothing.reason)

    def test_chainPlainRequest(self) -> None:
        """
        A request the server found plain (no C{l5d-*} header) is not searched
        for a local dtab; others are.
        """
        chain = IdentifierChain((HeaderTokenIdentifier(),))
        request = req(Host="web")
        l5d.scanRequest(request)
        self.assertEqual(chain.identify(request), Identified(Path.read("/svc/web")))
        request = req(Host="web", dtab_local="/svc/web => /svc/w")
        l5d.scanRequest(request)
        self.assertEqual(
            chain.identify(request),
            Identified(Path.read("/svc/web"), Dtab.read("/svc/web=>/svc/w")),
        )

    def test_chainBadDtab(self) -> None:
        result = IdentifierChain((HeaderTokenIdentifier(),)).identify(req(Host="a", l5d_dtab="x"))
        assert isinstance(result, Unidentified)
        self.assertIn("l5d-dtab", result.reason)

    def test_chainWithDeferred(self) -> None:
        class Later:
            def identify(self, request: object) -> object:
                return succeed(Unidentified("later"))

        chain = IdentifierChain((Later(), StaticIdentifier(Path.read("/x"))))  # type: ignore[arg-type]
        self.assertEqual(
            self.successResultOf(chain.identify(req())),  # type: ignore[arg-type]
            Identified(Path.read("/svc/x")),
        )

    def test_plugins(self) -> None:
        kinds = set()
        for plugin in IDENTIFIER_PLUGINS:
            verifyObject(IIdentifierPlugin, plugin)
            self.assertEqual(plugin.protocol, "http")
            kinds.add(plugin.kind)
        self.assertEqual(
            kinds,
            {
                "io.l5d.header.token",
                "io.l5d.header",
                "io.l5d.methodAndHost",
                "io.l5d.path",
                "io.l5d.static",
            },
        )
        for ident in (HeaderTokenIdentifier(), PathIdentifier(), StaticIdentifier(Path())):
            verifyObject(IIdentifier, ident)
