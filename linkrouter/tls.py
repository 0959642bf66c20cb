# -*- test-case-name: tests.test_tls -*-
"""
TLS as Linkerd configures it: the C{tls} sections of router servers, of
router clients and of the admin server, and the Twisted TLS policies built
from them.

Parsing checks keys and types only.  Files are read when a router or the
admin server is built, and a file that cannot be read or used stops
start-up with one line naming it.

pyOpenSSL is imported only inside the builders: a process whose
configuration has no C{tls} runs without it (see
C{linkrouter.tap._leaveTLSUnloaded}).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IProtocolFactory
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from linkrouter.config._section import REQUIRED

if TYPE_CHECKING:
    from linkrouter.config._section import Section

PROTOCOLS = {"TLSv1": "TLSv1_0", "TLSv1.1": "TLSv1_1", "TLSv1.2": "TLSv1_2", "TLSv1.3": "TLSv1_3"}
"""Linkerd's (Java's) protocol names, and Twisted's L{TLSVersion} names."""

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TLSError(Exception):
    """
    A TLS file cannot be read or used; C{str()} is one line naming the
    configuration key and the file.
    """


@attrs.frozen
class ServerTLS:
    """
    A server's (or the admin server's) C{tls} section.  C{where} is its
    key path in the configuration, for messages.
    """

    certPath: str
    keyPath: str
    intermediateCertsPath: str | None = None
    caCertPath: str | None = None
    requireClientAuth: bool = False
    ciphers: tuple[str, ...] | None = None
    protocols: tuple[str, ...] | None = None
    where: str = attrs.field(default="tls", eq=False)


@attrs.frozen
class ClientAuth:
    """The client certificate a router presents (mutual TLS)."""

    certPath: str
    keyPath: str
    intermediateCertsPath: str | None = None


@attrs.frozen
class ClientTLS:
    """
    A router client's C{tls} section.  C{commonName} may hold C{{name}}
    variables captured by the C{io.l5d.static} prefix it comes with, until
    L{withCaptures} substitutes them.
    """

    enabled: bool = True
    disableValidation: bool = False
    commonName: str | None = None
    trustCerts: tuple[str, ...] = ()
    trustCertsBundle: str | None = None
    clientAuth: ClientAuth | None = None
    protocols: tuple[str, ...] | None = None
    where: str = attrs.field(default="tls", eq=False)

    def withCaptures(self, captured: Mapping[str, str]) -> ClientTLS:
        """This configuration with C{captured} variables put in C{commonName}."""
        if not self.commonName or not captured:
            return self
        name = _VARIABLE.sub(lambda m: captured.get(m.group(1), m.group(0)), self.commonName)
        return attrs.evolve(self, commonName=name)


# -- parsing


def _strings(section: Section, key: str) -> tuple[str, ...] | None:
    values = section.get(key, list)
    if values is None:
        return None
    if not all(isinstance(v, str) and v for v in values):
        section.error("expected a list of strings", key)
        return None
    return tuple(values)


def _protocols(section: Section) -> tuple[str, ...] | None:
    names = _strings(section, "protocols")
    for name in names or ():
        if name not in PROTOCOLS:
            section.error(
                f"unknown protocol {name!r} (supported: {', '.join(PROTOCOLS)})", "protocols"
            )
            return None
    if names == ():
        section.error("must name at least one protocol", "protocols")
        return None
    return names


def parseServerTLS(section: Section) -> ServerTLS | None:
    """
    A C{tls} section of a server or of the admin server; C{None} (after
    recording the problems) if it is not usable.
    """
    certPath = section.get("certPath", str, REQUIRED)
    keyPath = section.get("keyPath", str, REQUIRED)
    config = ServerTLS(
        certPath or "",
        keyPath or "",
        intermediateCertsPath=section.get("intermediateCertsPath", str),
        caCertPath=section.get("caCertPath", str),
        requireClientAuth=bool(section.get("requireClientAuth", bool, False)),
        ciphers=_strings(section, "ciphers"),
        protocols=_protocols(section),
        where=section.path,
    )
    if config.ciphers == ():
        section.error("must name at least one cipher", "ciphers")
    return config if certPath and keyPath else None


def parseClientTLS(section: Section, variables: Iterable[str] = ()) -> ClientTLS:
    """
    A router client's C{tls} section; C{variables} are the names its
    C{commonName} may use (those captured by its prefix).
    """
    enabled = bool(section.get("enabled", bool, True))
    disable = bool(section.get("disableValidation", bool, False))
    commonName = section.get("commonName", str)
    trustCerts = _strings(section, "trustCerts") or ()
    bundle = section.get("trustCertsBundle", str)
    clientAuth = None
    if section.has("clientAuth"):
        auth = section.section("clientAuth")
        cert = auth.get("certPath", str, REQUIRED)
        key = auth.get("keyPath", str, REQUIRED)
        intermediate = auth.get("intermediateCertsPath", str)
        if cert and key:
            clientAuth = ClientAuth(cert, key, intermediate)
    protocols = _protocols(section)
    if enabled:
        if not disable and not commonName:
            section.error("required unless disableValidation is true", "commonName")
        if disable and section.has("clientAuth"):
            section.error("disableValidation: true is incompatible with clientAuth", "clientAuth")
        if trustCerts and bundle:
            section.error("give trustCerts or trustCertsBundle, not both", "trustCertsBundle")
    known = set(variables)
    for name in _VARIABLE.findall(commonName or ""):
        if name not in known:
            section.error(f"{{{name}}} is not captured by this entry's prefix", "commonName")
    return ClientTLS(
        enabled, disable, commonName, trustCerts, bundle, clientAuth, protocols, section.path
    )


# -- files


def _read(where: str, key: str, path: str, baseDir: str) -> bytes:
    full = os.path.join(baseDir, path)
    try:
        with open(full, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSError(f"{where}.{key}: cannot read {path}: {e.strerror or e}") from None


def _certificates(where: str, key: str, path: str, baseDir: str) -> list[Any]:
    """The certificates in a PEM file, as cryptography objects."""
    from cryptography import x509

    data = _read(where, key, path, baseDir)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TLSError(f"{where}.{key}: {path} holds no PEM certificate") from None


def _privateKey(where: str, key: str, path: str, baseDir: str) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    data = _read(where, key, path, baseDir)
    try:
        return load_pem_private_key(data, None)
    except TypeError:
        raise TLSError(f"{where}.{key}: {path} is encrypted (unsupported)") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TLSError(f"{where}.{key}: {path} holds no usable PEM private key ({e})") from None


def _publicBytes(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


@attrs.frozen
class _Identity:
    """A certificate, its private key and intermediates, as pyOpenSSL objects."""

    certificate: Any
    key: Any
    chain: list[Any]


def _identity(
    where: str, certPath: str, keyPath: str, chainPath: str | None, baseDir: str, prefix: str = ""
) -> _Identity:
    from OpenSSL import crypto

    certs = _certificates(where, f"{prefix}certPath", certPath, baseDir)
    key = _privateKey(where, f"{prefix}keyPath", keyPath, baseDir)
    if _publicBytes(certs[0].public_key()) != _publicBytes(key.public_key()):
        raise TLSError(f"{where}.{prefix}keyPath: {keyPath} is not the key of {certPath}")
    chain = certs[1:]
    if chainPath is not None:
        chain += _certificates(where, f"{prefix}intermediateCertsPath", chainPath, baseDir)
    return _Identity(
        crypto.X509.from_cryptography(certs[0]),
        crypto.PKey.from_cryptography_key(key),
        [crypto.X509.from_cryptography(c) for c in chain],
    )


def _versions(protocols: tuple[str, ...] | None) -> dict[str, Any]:
    """C{CertificateOptions} arguments that allow exactly C{protocols}' range."""
    if not protocols:
        return {}
    from twisted.internet.ssl import TLSVersion

    order = list(PROTOCOLS)
    names = sorted(protocols, key=order.index)
    low = TLSVersion.lookupByName(PROTOCOLS[names[0]])
    high = TLSVersion.lookupByName(PROTOCOLS[names[-1]])
    return {"insecurelyLowerMinimumTo": low, "lowerMaximumSecurityTo": high}


def _ciphers(where: str, names: tuple[str, ...]) -> Any:
    from OpenSSL import SSL
    from twisted.internet.ssl import AcceptableCiphers

    scratch = SSL.Context(SSL.TLS_METHOD)
    for name in names:
        try:
            scratch.set_cipher_list(name.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError):
            raise TLSError(
                f"{where}.ciphers: OpenSSL does not know the cipher {name!r}"
                " (give OpenSSL cipher names, such as ECDHE-RSA-AES128-GCM-SHA256)"
            ) from None
    return AcceptableCiphers.fromOpenSSLCipherString(":".join(names))


def _trustRoot(certificates: list[Any]) -> Any:
    from OpenSSL import crypto
    from twisted.internet import ssl

    if not certificates:
        return ssl.platformTrust()
    return ssl.trustRootFromCertificates(
        [ssl.Certificate(crypto.X509.from_cryptography(c)) for c in certificates]
    )


# -- servers


def serverContextFactory(config: ServerTLS, baseDir: str) -> Any:
    """
    The TLS policy of a server (a C{CertificateOptions}), its files read
    from C{baseDir}.

    @raise TLSError: a file cannot be read or used.
    """
    from OpenSSL import SSL
    from twisted.internet import ssl

    where = config.where
    me = _identity(where, config.certPath, config.keyPath, config.intermediateCertsPath, baseDir)
    extra: dict[str, Any] = _versions(config.protocols)
    if config.ciphers:
        extra["acceptableCiphers"] = _ciphers(where, config.ciphers)
    if config.requireClientAuth:
        cas = (
            _certificates(where, "caCertPath", config.caCertPath, baseDir)
            if config.caCertPath
            else []
        )
        extra["trustRoot"] = _trustRoot(cas)
    elif config.caCertPath:
        _certificates(where, "caCertPath", config.caCertPath, baseDir)
    options = ssl.CertificateOptions(
        privateKey=me.key, certificate=me.certificate, extraCertChain=me.chain, **extra
    )
    try:
        options.getContext()
    except SSL.Error as e:
        raise TLSError(f"{where}: OpenSSL refuses these settings: {describeSSLError(e)}") from None
    return options


@implementer(IProtocolFactory)
class TLSServerFactory:
    """
    A server factory behind TLS: connections are TLS, and C{drain()} and
    C{closeAll()} (graceful shutdown) reach the wrapped factory.
    """

    def __init__(self, contextFactory: Any, wrappedFactory: Any) -> None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        self.wrappedFactory = wrappedFactory
        self._tls = TLSMemoryBIOFactory(contextFactory, False, wrappedFactory)

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        return self._tls.buildProtocol(addr)

    def doStart(self) -> None:
        self._tls.doStart()

    def doStop(self) -> None:
        self._tls.doStop()

    def logPrefix(self) -> str:
        return f"TLS {type(self.wrappedFactory).__name__}"

    def drain(self) -> Deferred[None] | None:
        drain = getattr(self.wrappedFactory, "drain", None)
        return drain() if drain is not None else None

    def closeAll(self) -> None:
        closeAll = getattr(self.wrappedFactory, "closeAll", None)
        if closeAll is not None:
            closeAll()


def serverFactory(config: ServerTLS | None, factory: Any, baseDir: str) -> Any:
    """C{factory} behind TLS if C{config} says so, else C{factory} itself."""
    if config is None:
        return factory
    return TLSServerFactory(serverContextFactory(config, baseDir), factory)


def unwrap(factory: Any) -> Any:
    """The protocol factory behind a L{TLSServerFactory} (or C{factory})."""
    return factory.wrappedFactory if isinstance(factory, TLSServerFactory) else factory


# -- clients


@attrs.frozen
class _ClientMaterial:
    trust: list[Any]
    identity: _Identity | None


class ClientTLSContexts:
    """
    The TLS connection creators of a router's clients: the files of every
    client C{tls} section are read when this is made (so that a bad one
    stops start-up), and one creator is made per distinct setting and
    common name.
    """

    def __init__(self, configs: Iterable[ClientTLS | None], baseDir: str) -> None:
        self._baseDir = baseDir
        self._materials: dict[ClientTLS, _ClientMaterial] = {}
        self._creators: dict[ClientTLS, Any] = {}
        for config in configs:
            if config is not None and config.enabled:
                self._material(config)

    @classmethod
    def forPolicy(cls, policy: Any, baseDir: str) -> ClientTLSContexts:
        """For a router's client policy (a L{linkrouter.config.PrefixedPolicy})."""
        params = [policy.base, *(p for _, p in policy.entries)]
        return cls((p.tls for p in params), baseDir)

    def _material(self, config: ClientTLS) -> _ClientMaterial:
        key = attrs.evolve(config, commonName=None)
        found = self._materials.get(key)
        if found is not None:
            return found
        where, base = config.where, self._baseDir
        trust: list[Any] = []
        for i, path in enumerate(config.trustCerts):
            trust += _certificates(where, f"trustCerts[{i}]", path, base)
        if config.trustCertsBundle:
            trust += _certificates(where, "trustCertsBundle", config.trustCertsBundle, base)
        auth = config.clientAuth
        identity = (
            _identity(
                where, auth.certPath, auth.keyPath, auth.intermediateCertsPath, base, "clientAuth."
            )
            if auth is not None
            else None
        )
        material = self._materials[key] = _ClientMaterial(trust, identity)
        return material

    def creator(self, config: ClientTLS | None) -> Any:
        """
        The connection creator for C{config} (whose C{commonName} has its
        variables substituted), or C{None} for plain text.
        """
        if config is None or not config.enabled:
            return None
        found = self._creators.get(config)
        if found is None:
            found = self._creators[config] = self._make(config)
        return found

    def _make(self, config: ClientTLS) -> Any:
        from twisted.internet import ssl

        material = self._material(config)
        extra = _versions(config.protocols)
        identity = material.identity
        if config.disableValidation:
            return ssl.CertificateOptions(verify=False, **extra)
        if identity is not None:
            extra["extraCertChain"] = identity.chain
            clientCertificate = ssl.PrivateCertificate.fromCertificateAndKeyPair(
                ssl.Certificate(identity.certificate), ssl.KeyPair(identity.key)
            )
        else:
            clientCertificate = None
        assert config.commonName is not None, "parsing requires it"
        return ssl.optionsForClientTLS(
            config.commonName,
            trustRoot=_trustRoot(material.trust),
            clientCertificate=clientCertificate,
            extraCertificateOptions=extra,
        )


def clientFactory(creator: Any, factory: Any) -> Any:
    """C{factory}'s connections through TLS with C{creator} (if not C{None})."""
    if creator is None:
        return factory
    from twisted.protocols.tls import TLSMemoryBIOFactory

    return TLSMemoryBIOFactory(creator, True, factory)


def clientEndpoint(creator: Any, endpoint: Any) -> Any:
    """C{endpoint}'s connections through TLS with C{creator} (if not C{None})."""
    if creator is None:
        return endpoint
    from twisted.internet.endpoints import wrapClientTLS

    return wrapClientTLS(creator, endpoint)


# -- errors


def describeSSLError(error: BaseException) -> str:
    """A one-line reason for a TLS failure (handshake, verification)."""
    errors = getattr(error, "errors", None)
    if type(error).__name__ == "VerificationError" and errors:
        return "certificate name mismatch: " + "; ".join(str(e) for e in errors)
    args = error.args[0] if error.args else None
    if isinstance(args, list) and args and all(isinstance(a, tuple) for a in args):
        return "; ".join(str(a[-1]) for a in args if a and a[-1]) or type(error).__name__
    return str(error) or type(error).__name__


def tlsFailure(error: object) -> str | None:
    """
    If C{error} (why a connection was lost) is a TLS handshake or
    verification failure, a one-line reason; else C{None}.
    """
    if not isinstance(error, BaseException):
        return None
    module = type(error).__module__
    if module.startswith("OpenSSL") or type(error).__name__ == "VerificationError":
        return describeSSLError(error)
    return None
