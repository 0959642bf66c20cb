# -*- test-case-name: tests.test_namers_transformers -*-
"""
Transformers: rewrite the bound trees a namer or an interpreter produces.

 - C{io.l5d.localhost}: keep only the addresses of this host's interfaces;
 - C{io.l5d.specificHost} (C{host}): keep only the addresses of C{host};
 - C{io.l5d.port} (C{port}): replace every address's port;
 - C{io.l5d.replace} (C{path}): replace every bound name with what C{path}
   binds to through the system namers (C{/$/...}); negative stays negative;
 - C{io.l5d.const} (C{path}): ignore the tree and use what C{path} binds to.

Every transformer takes an optional C{prefix} (default C{/<kind>}, and
C{/io.l5d.port/<port>} for the port transformer).  The bound names it
produces have the id C{/%<prefix><original id>}, e.g.
C{/%/io.l5d.localhost/#/io.l5d.fs/web}.  Filtering away every address
leaves a name with no addresses (C{ADDR_NEG}).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import attrs
from twisted.plugin import IPlugin
from twisted.python.failure import Failure
from zope.interface import alsoProvides, implementer

from linkrouter.config import REQUIRED, Section
from linkrouter.interfaces import (
    IDelegator,
    IInterpreter,
    INamer,
    ITransformer,
    ITransformerPlugin,
)
from linkrouter.naming import (
    ADDR_NEG,
    EMPTY,
    FAIL,
    NEG,
    PENDING,
    Activity,
    Addr,
    AddrBound,
    Address,
    Alt,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Failed,
    Leaf,
    NameTree,
    Ok,
    ParseError,
    Path,
    State,
    Union,
    Var,
    Weighted,
    reactorResolver,
)

TRANSFORMER_ROOT = Path(b"%")

BoundTree = NameTree[Bound]


def _normalize(host: str) -> str | None:
    """C{host} as a canonical IP address string, or C{None} if it is not one."""
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        return None


def localAddresses() -> frozenset[str]:
    """
    The IP addresses of this host's interfaces (loopback included).  IPv4
    addresses are read with C{SIOCGIFADDR} and IPv6 ones from
    C{/proc/net/if_inet6} where the platform has them.
    """
    found = {"127.0.0.1", "::1"}
    try:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                request = struct.pack("256s", name.encode()[:15])
                try:
                    reply = fcntl.ioctl(s.fileno(), 0x8915, request)  # SIOCGIFADDR
                except OSError:
                    continue
                found.add(socket.inet_ntoa(reply[20:24]))
    except (ImportError, OSError):
        pass
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                found.add(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(found)


@implementer(ITransformer)
class AddressTransformer:
    """
    Rewrites the addresses of every bound name with C{rewrite} (given the
    current value of C{context}), and prefixes its id with C{prefix}.  While
    C{context} is pending or failed, so is the transformed tree.
    """

    def __init__(
        self,
        prefix: Path,
        rewrite: Callable[[Any, Address], Address | None],
        context: Activity[Any] | None = None,
    ) -> None:
        self.prefix = prefix
        self._rewrite = rewrite
        self._context: Activity[Any] = context if context is not None else Activity.value(None)

    def transform(self, tree: BoundTree) -> Activity[BoundTree]:  # type: ignore[override]
        return self._context.map(lambda ctx: tree.map(lambda b: self._bound(ctx, b)))

    def _bound(self, ctx: Any, bound: Bound) -> Bound:
        rewrite = self._rewrite

        def addr(value: Addr) -> Addr:
            if type(value) is not AddrBound:
                return value
            kept = frozenset(a for a in (rewrite(ctx, a) for a in value.addresses) if a is not None)
            return AddrBound(kept, value.meta) if kept else cast(Addr, ADDR_NEG)

        return Bound(self.prefix + bound.id, bound.addr.map(addr), bound.residual)


def _keepIn(ips: frozenset[str], address: Address) -> Address | None:
    return address if _normalize(address.host) in ips else None


def localhostTransformer(prefix: Path, addresses: frozenset[str]) -> AddressTransformer:
    """Keep only addresses among C{addresses} (this host's)."""
    ips = frozenset(ip for ip in map(_normalize, addresses) if ip)
    return AddressTransformer(prefix, _keepIn, Activity.value(ips))


def specificHostTransformer(
    prefix: Path, host: str, resolver: Callable[[str], Any]
) -> AddressTransformer:
    """
    Keep only the addresses of C{host}; a host name is resolved once, with
    C{resolver}, and the tree is pending until then.
    """
    ip = _normalize(host)
    if ip is not None:
        return AddressTransformer(prefix, _keepIn, Activity.value(frozenset([ip])))
    var: Var[State[frozenset[str]]] = Var(PENDING)

    def resolved(ips: Iterable[str]) -> None:
        var.set(Ok(frozenset(n for n in map(_normalize, ips) if n)))

    def failed(f: Failure) -> None:
        var.set(Failed(ValueError(f"io.l5d.specificHost: cannot resolve {host}: {f.value}")))

    resolver(host).addCallbacks(resolved, failed)
    return AddressTransformer(prefix, _keepIn, Activity(var))


def portTransformer(prefix: Path, port: int) -> AddressTransformer:
    """Replace the port of every address with C{port}."""
    return AddressTransformer(prefix, lambda _, a: attrs.evolve(a, port=port))


def _prefixed(prefix: Path, tree: BoundTree) -> BoundTree:
    return tree.map(lambda b: Bound(prefix + b.id, b.addr, b.residual))


def _replaceLeaves(tree: BoundTree, replacement: BoundTree) -> BoundTree:
    cls = type(tree)
    if cls is Leaf:
        return replacement
    if cls is Alt:
        return Alt(*[_replaceLeaves(t, replacement) for t in cast(Alt[Bound], tree).trees])
    if cls is Union:
        return Union(
            *[
                Weighted(w.weight, _replaceLeaves(w.tree, replacement))
                for w in cast(Union[Bound], tree).trees
            ]
        )
    return tree


@implementer(ITransformer)
class ReplaceTransformer:
    """
    Replaces every bound name of the tree with C{replacement}'s tree; with
    C{const}, the tree itself is ignored (even a negative one).
    """

    def __init__(self, replacement: Activity[BoundTree], const: bool) -> None:
        self.replacement = replacement
        self.const = const

    def transform(self, tree: BoundTree) -> Activity[BoundTree]:  # type: ignore[override]
        if self.const:
            return self.replacement
        return self.replacement.map(lambda rep: _replaceLeaves(tree, rep))


def systemBinding(path: Path, resolver: Any, prefix: Path) -> Activity[BoundTree]:
    """What C{path} binds to through the system namers, ids prefixed."""
    binding = ConfiguredNamersInterpreter((), resolver).bind(Dtab.empty(), path)
    return binding.map(lambda tree: _prefixed(prefix, tree))


# --------------------------------------------------------------------------
# Wrappers


def _isBound(tree: NameTree[Any]) -> bool:
    cls = type(tree)
    if cls is Leaf:
        return type(cast(Leaf[Any], tree).value) is Bound
    if cls is Alt:
        return all(_isBound(t) for t in cast(Alt[Any], tree).trees)
    if cls is Union:
        return all(_isBound(w.tree) for w in cast(Union[Any], tree).trees)
    return tree is NEG or tree is EMPTY or tree is FAIL


def applyTransformers(transformers: Sequence[ITransformer], tree: BoundTree) -> Activity[BoundTree]:
    """C{tree} through each of C{transformers}, in order."""
    result = Activity.value(tree)
    for t in transformers:
        result = result.flatMap(cast(Callable[[BoundTree], Activity[BoundTree]], t.transform))
    return result


@implementer(INamer)
class TransformingNamer:
    """
    A namer whose fully bound answers go through C{transformers}; answers
    that still contain paths to bind further are left as they are.
    """

    def __init__(self, namer: INamer, transformers: Sequence[ITransformer]) -> None:
        self.namer = namer
        self.transformers = tuple(transformers)

    def lookup(self, path: Path) -> Activity[NameTree[Any]]:  # type: ignore[override]
        activity: Activity[NameTree[Any]] = self.namer.lookup(path)

        def transform(tree: NameTree[Any]) -> Activity[NameTree[Any]]:
            if _isBound(tree):
                return cast(Activity[NameTree[Any]], applyTransformers(self.transformers, tree))
            return Activity.value(tree)

        return activity.flatMap(transform)


@implementer(IInterpreter)
class TransformingInterpreter:
    """
    An interpreter whose bound trees go through C{transformers}.  It
    provides L{IDelegator} if C{interpreter} does; explanations are those
    of C{interpreter}, before transformation.
    """

    def __init__(self, interpreter: IInterpreter, transformers: Sequence[ITransformer]) -> None:
        self.interpreter = interpreter
        self.transformers = tuple(transformers)
        if IDelegator.providedBy(interpreter):
            alsoProvides(self, IDelegator)

    def bind(self, dtab: Dtab, path: Path) -> Activity[BoundTree]:  # type: ignore[override]
        activity: Activity[BoundTree] = self.interpreter.bind(dtab, path)
        return activity.flatMap(lambda tree: applyTransformers(self.transformers, tree))

    def delegate(self, dtab: Dtab, path: Path) -> Any:
        return cast(Any, self.interpreter).delegate(dtab, path)


# --------------------------------------------------------------------------
# Plugins


@attrs.frozen
class TransformerConfig:
    """
    @ivar prefix: the complete id prefix, C{/%/<prefix>}.
    @ivar value: the kind's own setting (host, port or path), if any.
    """

    prefix: Path
    value: Any = None


def _prefix(section: Section, default: str) -> Path:
    text = section.get("prefix", str, default) or default
    try:
        return TRANSFORMER_ROOT + Path.read(text)
    except ParseError as e:
        section.error(f"not a path: {e}", "prefix")
        return TRANSFORMER_ROOT + Path.read(default)


@implementer(IPlugin, ITransformerPlugin)
@attrs.frozen
class TransformerPlugin:
    """
    A transformer kind: C{read(section)} reads its own setting, and
    C{make(config, context)} builds it.
    """

    kind: str
    read: Callable[[Section], Any]
    make: Callable[[TransformerConfig, Any], ITransformer]
    defaultPrefix: Callable[[Any], str] | None = None

    def parseConfig(self, section: Section) -> TransformerConfig:  # type: ignore[override]
        value = self.read(section)
        default = f"/{self.kind}" if self.defaultPrefix is None else self.defaultPrefix(value)
        return TransformerConfig(_prefix(section, default), value)

    def build(self, config: TransformerConfig, context: Any) -> ITransformer:  # type: ignore[override]
        return self.make(config, context)


def _readNothing(section: Section) -> None:
    return None


def _readHost(section: Section) -> str:
    return section.get("host", str, REQUIRED) or ""


def _readPort(section: Section) -> int:
    port = section.get("port", int, REQUIRED)
    if port is not None and not 0 < port <= 65535:
        section.error("must be a port number (1-65535)", "port")
    return port or 0


def _readPath(section: Section) -> Path:
    text = section.get("path", str, REQUIRED)
    if text is None:
        return Path()
    try:
        return Path.read(text)
    except ParseError as e:
        section.error(f"not a path: {e}", "path")
        return Path()


def _resolver(context: Any) -> Any:
    return reactorResolver(context.reactor)


localhost = TransformerPlugin(
    "io.l5d.localhost",
    _readNothing,
    lambda c, ctx: localhostTransformer(c.prefix, localAddresses()),
)
specificHost = TransformerPlugin(
    "io.l5d.specificHost",
    _readHost,
    lambda c, ctx: specificHostTransformer(c.prefix, c.value, _resolver(ctx)),
)
port = TransformerPlugin(
    "io.l5d.port",
    _readPort,
    lambda c, ctx: portTransformer(c.prefix, c.value),
    lambda value: f"/io.l5d.port/{value}",
)
replace = TransformerPlugin(
    "io.l5d.replace",
    _readPath,
    lambda c, ctx: ReplaceTransformer(
        systemBinding(c.value, _resolver(ctx), c.prefix), const=False
    ),
)
const = TransformerPlugin(
    "io.l5d.const",
    _readPath,
    lambda c, ctx: ReplaceTransformer(systemBinding(c.value, _resolver(ctx), c.prefix), const=True),
)
