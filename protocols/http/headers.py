# -*- test-case-name: tests.test_http_headers -*-
"""
Linkerd's C{l5d-*} headers, C{Via}, C{Forwarded} and the timestamp header,
as pure functions on L{Request} and L{Response}.
"""

from __future__ import annotations

import ipaddress
import os
from base64 import urlsafe_b64encode
from collections.abc import Callable
from random import getrandbits

import attrs
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress

from protocols.http.message import Header, Request, Response

VIA = b"1.1 linkrouter"
DTAB_HEADERS = (b"l5d-ctx-dtab", b"dtab-local", b"l5d-dtab")
"""Read in this order and concatenated: the context dtab, then user overrides."""
DEFAULT_MAX_CALL_DEPTH = 10
PLAIN = "l5d.plain"
"""
C{request.ctx} key that L{scanRequest} sets when the request arrived with
no C{l5d-*} or C{dtab-local} header: readers of those headers (the local
dtab, the deadline) then need not walk the list again.
"""
ACCEPTS_ENCODING = "accepts-encoding"
"""C{request.ctx} key that L{scanRequest} sets when C{Accept-Encoding} is present."""


def scanRequest(request: Request) -> int:
    """
    One pass over an arriving request's headers: its call depth (from
    C{Via}), with L{PLAIN} and L{ACCEPTS_ENCODING} set in its context as
    they apply.
    """
    depth = 0
    plain = True
    for n, v in request.headers.raw:
        ln = n.lower()
        if ln == b"via":
            depth += v.count(b",") + 1
        elif ln == b"accept-encoding":
            request.ctx[ACCEPTS_ENCODING] = True
        elif plain and (ln.startswith(b"l5d-") or ln == b"dtab-local"):
            plain = False
    if plain:
        request.ctx[PLAIN] = True
    return depth


def localDtab(request: Request) -> str:
    """
    The request's local dtab as text: C{l5d-ctx-dtab}, then the deprecated
    C{dtab-local}, then C{l5d-dtab}, joined with C{;}.  The user headers are
    removed and the whole dtab is forwarded as C{l5d-ctx-dtab}, so the next
    router applies it too.  Parsing (and a 400 on error) is the caller's job.
    """
    headers = request.headers
    parts: list[tuple[bytes, bytes]] = []
    found = False
    for n, v in headers.raw:
        ln = n.lower()
        if ln in DTAB_HEADERS:
            found = True
            if v.strip():
                parts.append((ln, v.strip().rstrip(b";")))
    if not found:
        return ""
    ordered = [v for name in DTAB_HEADERS for (ln, v) in parts if ln == name]
    text = b";".join(ordered)
    headers.removeWhere(lambda name: name in DTAB_HEADERS)
    if text:
        headers.add(b"l5d-ctx-dtab", text)
    return text.decode("utf-8", "replace")


def clearContext(request: Request) -> None:
    """Drop every context and user header (C{clearContext} on untrusted servers)."""
    request.headers.removeWhere(
        lambda name: (
            name.startswith(b"l5d-ctx-") or name in (b"l5d-dtab", b"dtab-local", b"l5d-sample")
        )
    )


def contextHeaders(request: Request) -> dict[bytes, bytes]:
    """The C{l5d-ctx-*} headers by lower-cased name; they are forwarded as they are."""
    return {n.lower(): v for n, v in request.headers.raw if n.lower().startswith(b"l5d-ctx-")}


def callDepth(request: Request) -> int:
    """How many proxies the request has gone through, from C{Via}."""
    depth = 0
    for n, v in request.headers.raw:
        if n.lower() == b"via":
            depth += v.count(b",") + 1
    return depth


def prepareRequest(
    request: Request, service: bytes, client: bytes, residual: bytes = b"", via: bytes = VIA
) -> None:
    """
    Set the informational headers on a request about to be forwarded:
    C{l5d-dst-service}, C{l5d-dst-client}, C{l5d-dst-residual} (when not
    empty), C{l5d-reqid} (kept if present) and C{Via} (once: a retried
    request is the same request, so C{via} is appended only the first time).
    """
    annotate(request, serviceHeader(service), clientHeaders(client, residual), via)


def serviceHeader(service: bytes) -> Header:
    """The C{l5d-dst-service} header: build it once per destination."""
    return (b"l5d-dst-service", service)


def clientHeaders(client: bytes, residual: bytes = b"") -> tuple[Header, ...]:
    """The C{l5d-dst-client} (and residual) headers: build them once per client."""
    if residual and residual != b"/":
        return ((b"l5d-dst-client", client), (b"l5d-dst-residual", residual))
    return ((b"l5d-dst-client", client),)


def annotate(
    request: Request, service: Header, client: tuple[Header, ...], via: bytes = VIA
) -> None:
    """L{prepareRequest} with the headers built beforehand, in one pass over the request's."""
    kept = []
    reqid = False
    vias = []
    for h in request.headers.raw:
        n = h[0].lower()
        if n.startswith(b"l5d-"):
            if n.startswith(b"l5d-dst-"):
                continue
            if n == b"l5d-reqid":
                reqid = True
        elif n == b"via":
            vias.append(h[1])
            continue
        kept.append(h)
    kept.append(service)
    kept += client
    if not reqid:
        kept.append((b"l5d-reqid", b"%016x" % getrandbits(64)))
    ctx = request.ctx
    if "via" not in ctx:
        ctx["via"] = True
        vias.append(via)
    if vias:
        kept.append((b"Via", b", ".join(vias)))
    request.headers.raw = kept


def prepareResponse(response: Response, via: bytes = VIA) -> Response:
    """Append this router to the response's C{Via}."""
    raw = response.headers.raw
    prior: list[bytes] | None = None
    for n, v in raw:
        if n.lower() == b"via":
            if prior is None:
                prior = []
            prior.append(v)
    if prior is None:
        raw.append((b"Via", via))
    else:
        prior.append(via)
        response.headers.set(b"Via", b", ".join(prior))
    return response


def addTimestamp(request: Request, header: bytes, nowSeconds: float) -> None:
    """C{timestampHeader}: the time the request arrived, in epoch milliseconds."""
    request.headers.set(header, b"%d" % int(nowSeconds * 1000))


# -- Forwarded (RFC 7239)

Labeler = Callable[[IAddress | None, Request], str]
"""Given the address to describe and the request, the label to use."""


def _randomLabel() -> str:
    return "_" + urlsafe_b64encode(os.urandom(6)).decode().rstrip("=")


def _ip(address: IAddress | None, withPort: bool) -> str:
    if not isinstance(address, IPv4Address | IPv6Address):
        return "unknown"
    host = address.host
    try:
        v6 = ipaddress.ip_address(host.split("%")[0]).version == 6
    except ValueError:
        v6 = False
    shown = f"[{host}]" if v6 else host
    if withPort:
        return f'"{shown}:{address.port}"'
    return f'"{shown}"' if v6 else shown


def _obfuscated(label: str) -> str:
    return label if label.startswith("_") else "_" + label


@attrs.frozen
class LabelerConfig:
    """One C{by}/C{for} labeler: C{kind} and, for C{static}, its C{label}."""

    kind: str = "requestRandom"
    label: str | None = None


LABELER_KINDS = ("ip", "ip:port", "connectionRandom", "requestRandom", "router", "static")


def labeler(config: LabelerConfig, routerLabel: str = "http") -> Labeler:
    """
    The labeler for C{config}.  C{connectionRandom} keeps one label per
    downstream connection (in the server connection's context).
    """
    kind = config.kind
    if kind == "ip":
        return lambda address, request: _ip(address, False)
    if kind == "ip:port":
        return lambda address, request: _ip(address, True)
    if kind == "requestRandom":
        return lambda address, request: _randomLabel()
    if kind == "router":
        return lambda address, request: _obfuscated(routerLabel)
    if kind == "static":
        fixed = _obfuscated(config.label or "")
        return lambda address, request: fixed
    if kind == "connectionRandom":
        key = "forwarded.connectionRandom." + str(id(config))

        def connectionRandom(address: IAddress | None, request: Request) -> str:
            server = request.ctx.get("server")
            ctx = getattr(server, "ctx", None)
            if not isinstance(ctx, dict):
                return _randomLabel()
            label = ctx.get(key)
            if label is None:
                label = ctx[key] = _randomLabel()
            return str(label)

        return connectionRandom
    raise ValueError(f"unknown labeler kind {kind!r}; supported: {', '.join(LABELER_KINDS)}")


def addForwarded(request: Request, by: Labeler, for_: Labeler) -> None:
    """
    Append a C{Forwarded} element: C{by} labels the router's server address,
    C{for} the downstream client's; C{host} and C{proto} are added as well.
    """
    server = request.ctx.get("server")
    local = getattr(server, "host", None)
    peer = getattr(server, "peer", None)
    element = f"by={by(local, request)};for={for_(peer, request)}"
    host = request.headers.get(b"host")
    if host is not None:
        element += f';host="{host.decode("latin-1")}"'
    element += ";proto=http"
    prior = request.headers.getAll(b"forwarded")
    value = ", ".join([*(p.decode("latin-1") for p in prior), element])
    request.headers.set(b"Forwarded", value.encode("latin-1"))
