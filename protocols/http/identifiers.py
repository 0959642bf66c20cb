# -*- test-case-name: tests.test_http_identifiers -*-
"""
HTTP identifiers (C{linkerd/docs/protocol-http.md}) and their plugins.

Each identifier carries the router's C{dstPrefix}: a plugin's
C{parseConfig} returns a config whose C{dstPrefix} defaults to C{/svc}, and
the router sets it with C{attrs.evolve(config, dstPrefix=...)} before
C{build}.  L{IdentifierChain} tries identifiers in order and attaches the
request's local dtab (C{l5d-ctx-dtab}, C{dtab-local}, C{l5d-dtab}).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from twisted.internet.defer import Deferred
from zope.interface import implementer, provider

from linkrouter.config import REQUIRED, Section
from linkrouter.interfaces import IIdentifier, IIdentifierPlugin
from linkrouter.naming import Dtab, ParseError, Path
from linkrouter.routing import Identification, Identified, Unidentified
from protocols.http import headers as l5d
from protocols.http.message import Request

SVC = Path(b"svc")
_SEEN_LIMIT = 1024


def _segments(path: bytes) -> list[bytes]:
    return [s for s in path.split(b"/") if s]


def _path(prefix: Path, elems: Sequence[bytes]) -> Path:
    return Path(*prefix.elems, *elems)


@implementer(IIdentifier)
@attrs.frozen
class HeaderTokenIdentifier:
    """C{io.l5d.header.token}: C{/dstPrefix/<value of header>}."""

    header: bytes = b"Host"
    dstPrefix: Path = SVC
    _seen: dict[bytes, Identified] = attrs.field(factory=dict, eq=False, repr=False)

    def identify(self, request: object) -> Identification:
        assert isinstance(request, Request)
        value = request.headers.get(self.header)
        if not value:
            return Unidentified(f"{self.header.decode()} header is absent")
        # Steady traffic names few destinations: reuse their (immutable) names.
        seen = self._seen.get(value)
        if seen is None:
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.clear()
            seen = self._seen[value] = Identified(_path(self.dstPrefix, [value]))
        return seen


@implementer(IIdentifier)
@attrs.frozen
class MethodAndHostIdentifier:
    """
    C{io.l5d.methodAndHost}: C{/dstPrefix/1.1/METHOD/host[/uri...]}, or for
    HTTP/1.0 C{/dstPrefix/1.0/METHOD[/uri...]}; the host is lower-cased.
    """

    httpUriInDst: bool = False
    dstPrefix: Path = SVC

    def identify(self, request: object) -> Identification:
        assert isinstance(request, Request)
        elems = [request.version, request.method]
        if request.version != b"1.0":
            host = request.headers.get(b"host")
            if not host:
                return Unidentified("Host header is absent")
            elems.append(host.lower())
        if self.httpUriInDst:
            elems += _segments(request.path)
        return Identified(_path(self.dstPrefix, elems))


@implementer(IIdentifier)
@attrs.frozen
class PathIdentifier:
    """
    C{io.l5d.path}: C{/dstPrefix} plus the first C{segments} segments of the
    URL path; with C{consume}, the forwarded request loses them.
    """

    segments: int = 1
    consume: bool = False
    dstPrefix: Path = SVC

    def identify(self, request: object) -> Identification:
        assert isinstance(request, Request)
        path = request.path
        segs = _segments(path)
        if len(segs) < self.segments:
            return Unidentified(
                f"the path {path.decode('latin-1')!r} has fewer than {self.segments} segments"
            )
        dst = _path(self.dstPrefix, segs[: self.segments])
        if not self.consume:
            return Identified(dst)
        rest = b"/" + b"/".join(segs[self.segments :])
        if path.endswith(b"/") and len(segs) > self.segments:
            rest += b"/"
        query = request.uri[request.uri.find(b"?") :] if b"?" in request.uri else b""
        rewritten = Request(request.method, rest + query, request.headers, request.body)
        rewritten.version = request.version
        rewritten.ctx = request.ctx
        return Identified(dst, request=rewritten)


@implementer(IIdentifier)
@attrs.frozen
class HeaderPathIdentifier:
    """C{io.l5d.header}: the header's value, a path, under C{/dstPrefix}."""

    header: bytes = b"l5d-name"
    dstPrefix: Path = SVC

    def identify(self, request: object) -> Identification:
        assert isinstance(request, Request)
        value = request.headers.get(self.header)
        name = self.header.decode()
        if not value:
            return Unidentified(f"{name} header is absent")
        try:
            path = Path.read(value.decode("latin-1"))
        except ParseError as e:
            return Unidentified(f"{name} header is not a path: {e}")
        return Identified(self.dstPrefix + path)


@implementer(IIdentifier)
@attrs.frozen
class StaticIdentifier:
    """C{io.l5d.static}: always C{/dstPrefix/path}."""

    path: Path
    dstPrefix: Path = SVC

    def identify(self, request: object) -> Identification:
        return Identified(self.dstPrefix + self.path)


@implementer(IIdentifier)
@attrs.frozen
class IdentifierChain:
    """
    Tries C{identifiers} in order; the first L{Identified} wins and carries
    the request's local dtab.  An invalid dtab header leaves the request
    unidentified, saying why.
    """

    identifiers: tuple[IIdentifier, ...]

    def identify(self, request: object) -> Identification | Deferred[Identification]:
        assert isinstance(request, Request)
        dtab = None
        if l5d.PLAIN not in request.ctx:
            text = l5d.localDtab(request)
            try:
                dtab = Dtab.read(text) if text else None
            except ParseError as e:
                return Unidentified(f"invalid l5d-dtab header: {e}")
        return self._next(request, dtab, 0, None)

    def _next(
        self, request: Request, dtab: Dtab | None, i: int, reasons: list[str] | None
    ) -> Identification | Deferred[Identification]:
        identifiers = self.identifiers
        while i < len(identifiers):
            result = identifiers[i].identify(request)
            i += 1
            # Deferred is an ABC (slow isinstance): test the plain answers first.
            if isinstance(result, Identified):
                return result if dtab is None else self._withDtab(result, dtab)
            if isinstance(result, Unidentified):
                if reasons is None:
                    reasons = []
                reasons.append(result.reason)
                continue
            assert isinstance(result, Deferred)
            pending: Deferred[Identification] = result
            return pending.addCallback(self._resume, request, dtab, i, reasons)
        return Unidentified("; ".join(reasons or ()) or "no identifier configured")

    def _resume(
        self,
        result: Identification,
        request: Request,
        dtab: Dtab | None,
        i: int,
        reasons: list[str] | None,
    ) -> Identification | Deferred[Identification]:
        if isinstance(result, Identified):
            return result if dtab is None else self._withDtab(result, dtab)
        return self._next(request, dtab, i, [*(reasons or ()), result.reason])

    @staticmethod
    def _withDtab(result: Identified, dtab: Dtab) -> Identified:
        return attrs.evolve(result, localDtab=dtab)


# -- plugins


@attrs.frozen
class HeaderConfig:
    header: str
    dstPrefix: Path = SVC


@attrs.frozen
class MethodAndHostConfig:
    httpUriInDst: bool = False
    dstPrefix: Path = SVC


@attrs.frozen
class PathConfig:
    segments: int = 1
    consume: bool = False
    dstPrefix: Path = SVC


@attrs.frozen
class StaticConfig:
    path: Path
    dstPrefix: Path = SVC


def _header(section: Section, default: str) -> HeaderConfig:
    value = section.get("header", str, default)
    if not value:
        section.error("must be a header name", "header")
        value = default
    return HeaderConfig(value)


@provider(IIdentifierPlugin)
class headerTokenIdentifier:
    kind = "io.l5d.header.token"
    protocol = "http"

    @staticmethod
    def parseConfig(section: Section) -> HeaderConfig:
        return _header(section, "Host")

    @staticmethod
    def build(config: object, context: object) -> IIdentifier:
        assert isinstance(config, HeaderConfig)
        return HeaderTokenIdentifier(config.header.encode("latin-1"), config.dstPrefix)


@provider(IIdentifierPlugin)
class headerIdentifier:
    kind = "io.l5d.header"
    protocol = "http"

    @staticmethod
    def parseConfig(section: Section) -> HeaderConfig:
        return _header(section, "l5d-name")

    @staticmethod
    def build(config: object, context: object) -> IIdentifier:
        assert isinstance(config, HeaderConfig)
        return HeaderPathIdentifier(config.header.encode("latin-1"), config.dstPrefix)


@provider(IIdentifierPlugin)
class methodAndHostIdentifier:
    kind = "io.l5d.methodAndHost"
    protocol = "http"

    @staticmethod
    def parseConfig(section: Section) -> MethodAndHostConfig:
        return MethodAndHostConfig(bool(section.get("httpUriInDst", bool, False)))

    @staticmethod
    def build(config: object, context: object) -> IIdentifier:
        assert isinstance(config, MethodAndHostConfig)
        return MethodAndHostIdentifier(config.httpUriInDst, config.dstPrefix)


@provider(IIdentifierPlugin)
class pathIdentifier:
    kind = "io.l5d.path"
    protocol = "http"

    @staticmethod
    def parseConfig(section: Section) -> PathConfig:
        segments = section.get("segments", int, 1)
        if segments is None or segments < 1:
            section.error("must be 1 or more", "segments")
            segments = 1
        consume = section.get("consume", bool, False)
        return PathConfig(segments, bool(consume))

    @staticmethod
    def build(config: object, context: object) -> IIdentifier:
        assert isinstance(config, PathConfig)
        return PathIdentifier(config.segments, config.consume, config.dstPrefix)


@provider(IIdentifierPlugin)
class staticIdentifier:
    kind = "io.l5d.static"
    protocol = "http"

    @staticmethod
    def parseConfig(section: Section) -> StaticConfig:
        text = section.get("path", str, REQUIRED)
        try:
            return StaticConfig(Path.read(text) if text else Path())
        except ParseError as e:
            section.error(str(e), "path")
            return StaticConfig(Path())

    @staticmethod
    def build(config: object, context: object) -> IIdentifier:
        assert isinstance(config, StaticConfig)
        return StaticIdentifier(config.path, config.dstPrefix)


IDENTIFIER_PLUGINS = (
    headerTokenIdentifier,
    headerIdentifier,
    methodAndHostIdentifier,
    pathIdentifier,
    staticIdentifier,
)
"""Every built-in HTTP identifier plugin, for the dropin."""
