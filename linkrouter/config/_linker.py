# -*- test-case-name: tests.test_config_linker -*-
"""
Linkerd's top-level configuration schema: C{admin}, C{routers}, C{namers},
C{telemetry} and C{usage}.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from typing import IO, Any

import attrs

from linkrouter._plugins import PluginRegistry
from linkrouter.config._policy import (
    ClientParams,
    PrefixedPolicy,
    ServiceParams,
    Session,
    SocketOptions,
    nonNegative,
    parseClientPolicy,
    parseServicePolicy,
    parseSession,
    parseSocketOptions,
)
from linkrouter.config._section import (
    REQUIRED,
    ConfigError,
    Document,
    PluginConfig,
    Problem,
    Section,
)
from linkrouter.interfaces import (
    IIdentifierPlugin,
    IInterpreterPlugin,
    INamerPlugin,
    IProtocolPlugin,
    ITelemeterPlugin,
    ITransformerPlugin,
)
from linkrouter.naming import Dtab, ParseError, Path
from linkrouter.tls import ServerTLS, parseServerTLS

MAX_CONFIG_BYTES = 4 * 1024 * 1024
"""Configuration files larger than this are refused."""

LOOPBACK = "127.0.0.1"


@attrs.frozen
class AdminConfig:
    """
    The C{admin} section; C{security} is a
    L{linkrouter.admin.AdminSecurity} (C{None}: serve everything).
    """

    ip: str = "0.0.0.0"
    port: int = 9990
    shutdownGraceMs: int = 10000
    security: Any = None
    httpIdentifierPort: int | None = None
    workerThreads: int = 2
    tls: ServerTLS | None = None


@attrs.frozen
class ServerConfig:
    """
    One C{servers[]} entry; C{protocol} is what the protocol plugin's
    C{parseServerConfig} returned.
    """

    ip: str = LOOPBACK
    port: int = 0
    socketOptions: SocketOptions = attrs.field(factory=SocketOptions)
    maxConcurrentRequests: int | None = None
    clearContext: bool = False
    serverSession: Session = attrs.field(factory=Session)
    announce: tuple[Path, ...] = ()
    tls: ServerTLS | None = None
    protocol: object = None


@attrs.frozen
class BindingCacheConfig:
    paths: int = 1000
    trees: int = 1000
    bounds: int = 1000
    clients: int = 1000
    idleTtlSecs: int = 600


@attrs.frozen
class InterpreterConfig:
    """
    A router's interpreter.  C{plugin} is C{None} when no kind was given
    and the C{default} interpreter plugin is not installed.
    """

    plugin: PluginConfig | None
    transformers: tuple[PluginConfig, ...] = ()


@attrs.frozen
class RouterConfig:
    """
    One router.  C{plugin} is the L{IProtocolPlugin} provider, C{protocol}
    its kind and C{protocolConfig} what its C{parseConfig} returned.
    """

    protocol: str
    plugin: Any
    label: str
    dtab: Dtab
    dstPrefix: Path
    servers: tuple[ServerConfig, ...]
    client: PrefixedPolicy[ClientParams]
    service: PrefixedPolicy[ServiceParams]
    interpreter: InterpreterConfig
    identifiers: tuple[PluginConfig, ...] = ()
    bindingTimeoutMs: int = 10000
    bindingCache: BindingCacheConfig = attrs.field(factory=BindingCacheConfig)
    originator: bool = False
    protocolConfig: object = None


@attrs.frozen
class NamerEntry:
    """
    A configured namer, served at C{/#<prefix>}.
    """

    prefix: Path
    plugin: PluginConfig
    transformers: tuple[PluginConfig, ...] = ()


@attrs.frozen
class LinkerConfig:
    """
    A whole configuration.  C{source} is the plain (JSON-ready) content of
    the file, for C{/config.json}.
    """

    admin: AdminConfig
    routers: tuple[RouterConfig, ...]
    namers: tuple[NamerEntry, ...] = ()
    telemetry: tuple[PluginConfig, ...] = ()
    source: Any = attrs.field(factory=dict, eq=False)


def _ip(section: Section, key: str, default: str) -> str:
    """
    An IP address, or a host name resolved once, now, to its first address,
    IPv4 first as Java does (Linkerd reads these keys as C{InetAddress}es,
    which allow names).
    """
    text = section.get(key, str, default) or default
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(text, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        section.error(f"{text!r} is not an IP address or a host name that resolves: {reason}", key)
        return default
    found.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(found[0][4][0])


def _port(section: Section, key: str, default: Any) -> int:
    port = section.get(key, int, default)
    if port is not None and not 0 <= port <= 65535:
        section.error("must be a port number (0-65535)", key)
        return 0
    return port or 0


def _strings(section: Section, key: str) -> tuple[str, ...]:
    values = section.get(key, list, [])
    if not all(isinstance(v, str) for v in values or ()):
        section.error("expected a list of strings", key)
        return ()
    return tuple(values or ())


def _path(section: Section, key: str, default: str) -> Path:
    return _readPath(section, key, section.get(key, str, default) or default, default)


def _readPath(section: Section, key: str, text: str, default: str) -> Path:
    try:
        return Path.read(text)
    except ParseError as e:
        section.error(f"not a path: {e}", key)
        return Path.read(default)


def parseAdmin(section: Section) -> AdminConfig:
    d = AdminConfig()
    from linkrouter.admin import parseAdminSecurity

    security = parseAdminSecurity(section.section("security"))
    identifierPort = (
        _port(section, "httpIdentifierPort", None) if section.has("httpIdentifierPort") else None
    )
    if identifierPort is not None:
        section.error("the HTTP identifier debug endpoint is not supported", "httpIdentifierPort")
    return AdminConfig(
        ip=_ip(section, "ip", d.ip),
        port=_port(section, "port", d.port),
        shutdownGraceMs=nonNegative(section, "shutdownGraceMs", int, d.shutdownGraceMs) or 0,
        security=security,
        workerThreads=nonNegative(section, "workerThreads", int, d.workerThreads) or 0,
        tls=_tls(section),
    )


def _tls(section: Section) -> ServerTLS | None:
    return parseServerTLS(section.section("tls")) if section.has("tls") else None


def parseServer(section: Section, plugin: Any) -> ServerConfig:
    defaultPort = getattr(plugin, "defaultPort", None)
    announce = []
    for text in _strings(section, "announce"):
        try:
            announce.append(Path.read(text))
        except ParseError as e:
            section.error(f"not a path: {e}", "announce")
    if announce:
        section.error("announcing is not supported yet", "announce")
    return ServerConfig(
        ip=_ip(section, "ip", LOOPBACK),
        port=_port(section, "port", REQUIRED if defaultPort is None else defaultPort),
        socketOptions=parseSocketOptions(section.section("socketOptions")),
        maxConcurrentRequests=nonNegative(section, "maxConcurrentRequests"),
        clearContext=bool(section.get("clearContext", bool, False)),
        serverSession=parseSession(section.section("serverSession")),
        announce=tuple(announce),
        tls=_tls(section),
        protocol=plugin.parseServerConfig(section),
    )


def parseBindingCache(section: Section) -> BindingCacheConfig:
    d = BindingCacheConfig()
    values = {}
    for f in attrs.fields(BindingCacheConfig):
        value = nonNegative(section, f.name, int, getattr(d, f.name))
        if value is not None:
            values[f.name] = value
    return attrs.evolve(d, **values)


def parseRouter(section: Section) -> RouterConfig | None:
    protocol = section.get("protocol", str, REQUIRED)
    if protocol is None:
        section.readAll()
        return None
    plugin = section.registry.get(IProtocolPlugin, protocol)
    if plugin is None:
        supported = ", ".join(section.registry.kinds(IProtocolPlugin)) or "none yet"
        section.error(
            f"protocol {protocol!r} is not supported (supported: {supported})", "protocol"
        )
        section.readAll()
        return None
    dtabText = section.get("dtab", str, "") or ""
    try:
        dtab = Dtab.read(dtabText)
    except ParseError as e:
        section.error(f"not a dtab: {e}", "dtab")
        dtab = Dtab.empty()
    if section.has("announcers"):
        section.error("announcers are not supported yet (supported: none)", "announcers")
    if section.has("servers"):
        servers = [parseServer(s, plugin) for s in section.sections("servers")]
        if not servers:
            section.error("at least one server is required", "servers")
    else:
        servers = [
            parseServer(section.document.synthetic({}, section.path + ".servers[0]"), plugin)
        ]
    interpreterSection = section.section("interpreter")
    interpreter = InterpreterConfig(
        interpreterSection.parseAs(IInterpreterPlugin, defaultKind="default"),
        tuple(interpreterSection.pluginList("transformers", ITransformerPlugin)),
    )
    if section.has("identifier"):
        identifiers = section.pluginList("identifier", IIdentifierPlugin, protocol, single=True)
    else:
        default = getattr(plugin, "defaultIdentifier", None)
        found = section.document.synthetic({}, section.path).plugin(
            "identifier", IIdentifierPlugin, default, protocol
        )
        identifiers = [found] if found else []
    protocolConfig = section.parseWith(plugin, plugin.parseConfig)
    return RouterConfig(
        protocol=protocol,
        plugin=plugin,
        label=section.get("label", str, protocol) or protocol,
        dtab=dtab,
        dstPrefix=_path(section, "dstPrefix", "/svc"),
        servers=tuple(servers),
        client=parseClientPolicy(section.section("client"), plugin),
        service=parseServicePolicy(section.section("service"), plugin),
        interpreter=interpreter,
        identifiers=tuple(identifiers),
        bindingTimeoutMs=nonNegative(section, "bindingTimeoutMs", int, 10000) or 0,
        bindingCache=parseBindingCache(section.section("bindingCache")),
        originator=bool(section.get("originator", bool, False)),
        protocolConfig=protocolConfig.config if protocolConfig else None,
    )


def parseNamer(section: Section) -> NamerEntry | None:
    transformers = tuple(section.pluginList("transformers", ITransformerPlugin))
    prefixText = section.get("prefix", str)
    parsed = section.parseAs(INamerPlugin)
    if parsed is None:
        return None
    default = getattr(parsed.plugin, "defaultPrefix", None) or f"/{parsed.plugin.kind}"
    prefix = _readPath(section, "prefix", prefixText or default, default)
    return NamerEntry(prefix, parsed, transformers)


def _conflicts(a: tuple[str, int], b: tuple[str, int]) -> bool:
    (ipA, portA), (ipB, portB) = a, b
    if portA != portB or portA == 0:
        return False
    wildcard = {"0.0.0.0", "::"}
    return ipA == ipB or ipA in wildcard or ipB in wildcard


def _checkUnique(
    top: Section, admin: AdminConfig, routers: list[tuple[Section, RouterConfig]]
) -> None:
    labels: dict[str, str] = {}
    bound: list[tuple[tuple[str, int], str]] = [((admin.ip, admin.port), "the admin server")]
    for section, router in routers:
        if router.label in labels:
            section.error(
                f"label {router.label!r} is already used by {labels[router.label]}", "label"
            )
        labels.setdefault(router.label, section.path)
        serverSections = section.sections("servers") or [section]
        for server, serverSection in zip(router.servers, serverSections, strict=False):
            addr = (server.ip, server.port)
            where = next((name for other, name in bound if _conflicts(addr, other)), None)
            if where is not None:
                serverSection.error(f"{server.ip}:{server.port} is also used by {where}", "port")
            bound.append((addr, serverSection.path))


_NAMERD_KEYS = ("storage", "interfaces")


def parseLinker(top: Section) -> LinkerConfig:
    """
    Parse a whole configuration from its top-level section.  Problems are
    recorded in the section's document.
    """
    if not top.has("routers") and any(top.has(k) for k in _NAMERD_KEYS):
        top.error(
            "this is a namerd configuration (it has storage/interfaces); namerd is not "
            "supported (supported top-level keys: admin, routers, namers, telemetry, usage)"
        )
        top.readAll()
        return LinkerConfig(AdminConfig(), ())
    if not top.has("routers") and top.has("apiVersion") and top.has("kind"):
        kind = top.get("kind", str)
        top.error(
            f"this is a Kubernetes resource (kind {kind}), not a router configuration; "
            "Kubernetes resources are not supported (supported top-level keys: admin, routers, "
            "namers, telemetry, usage)"
        )
        top.readAll()
        return LinkerConfig(AdminConfig(), ())
    admin = parseAdmin(top.section("admin"))
    namers = [(s, parseNamer(s)) for s in top.sections("namers")]
    telemetry = top.pluginList("telemetry", ITelemeterPlugin)
    top.section("usage").readAll()
    routerSections = top.sections("routers")
    if not top.has("routers"):
        top.get("routers", list, REQUIRED)
    elif not routerSections:
        top.error("at least one router is required", "routers")
    routers = [(s, parseRouter(s)) for s in routerSections]
    parsed = [(s, r) for s, r in routers if r is not None]
    _checkUnique(top, admin, parsed)
    prefixes: dict[Path, str] = {}
    for section, namer in namers:
        if namer is None:
            continue
        if namer.prefix in prefixes:
            section.error(
                f"{namer.prefix.show} is already used by {prefixes[namer.prefix]}", "prefix"
            )
        prefixes.setdefault(namer.prefix, section.path)
    return LinkerConfig(
        admin=admin,
        routers=tuple(r for _, r in parsed),
        namers=tuple(n for _, n in namers if n is not None),
        telemetry=tuple(telemetry),
        source=top.plain(),
    )


def parseLinkerConfig(text: str | bytes, filename: str, registry: PluginRegistry) -> LinkerConfig:
    """
    Parse and validate a configuration (YAML or JSON).

    @raise ConfigError: listing every problem found.
    """
    document = Document(filename, registry)
    top = document.load(text)
    config = parseLinker(top) if top is not None else None
    document.finish()
    assert config is not None
    return config


def loadLinkerConfig(
    source: str, registry: PluginRegistry, stdin: IO[bytes] | None = None
) -> LinkerConfig:
    """
    Read and parse the configuration in the file C{source}, or on standard
    input if C{source} is C{-}.

    @raise ConfigError: the file cannot be read, or has problems.
    """
    try:
        if source == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(MAX_CONFIG_BYTES + 1)
        else:
            with open(source, "rb") as f:
                data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ConfigError(
            [Problem(source, 0, 0, "", f"cannot read the configuration: {reason}")]
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(source, 0, 0, "", f"larger than {MAX_CONFIG_BYTES} bytes")])
    return parseLinkerConfig(data, "<stdin>" if source == "-" else source, registry)
