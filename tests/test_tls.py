"""
TLS on router servers, router clients and the admin server, over real
loopback sockets, with a certificate authority made at test time.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import Any

import attrs
import treq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import reactor as _reactor
from twisted.internet import ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from linkrouter.config import ConfigError, parseLinkerConfig
from linkrouter.naming import Path
from linkrouter.service import LinkerService, StartupError
from linkrouter.tls import ClientTLS

from ._linker import registry, routerPort, startLinker
from .test_http_router import raw

reactor: Any = _reactor


# -- a certificate authority, made once per test run


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key: Any,
    issuer: tuple[x509.Name, Any] | None,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuerName, issuerKey = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuerName)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuerKey, hashes.SHA256())


@attrs.frozen
class PKI:
    dir: str

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)


_pki: list[PKI] = []


def pki(case: SynchronousTestCase) -> PKI:
    """ca.pem; server.pem/server-key.pem (localhost, 127.0.0.1); client.pem/client-key.pem."""
    if _pki:
        return _pki[0]
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)

    def write(name: str, data: bytes) -> None:
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

    def pem(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.PEM)

    def keyPem(key: Any) -> bytes:
        return key.private_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    caKey = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("test CA", caKey, None, ca=True)
    write("ca.pem", pem(ca))
    entries: list[tuple[str, list[x509.GeneralName]]] = [
        (
            "server",
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ),
        ("client", [x509.DNSName("client.test")]),
    ]
    for name, sans in entries:
        key = ec.generate_private_key(ec.SECP256R1())
        write(f"{name}.pem", pem(_issue(name, key, (ca.subject, caKey), sans=sans)))
        write(f"{name}-key.pem", keyPem(key))
    write("other-key.pem", keyPem(ec.generate_private_key(ec.SECP256R1())))
    _pki.append(PKI(directory))
    return _pki[0]


def _load(p: PKI, name: str) -> ssl.PrivateCertificate:
    with open(p.path(f"{name}.pem"), "rb") as c, open(p.path(f"{name}-key.pem"), "rb") as k:
        return ssl.PrivateCertificate.loadPEM(c.read() + k.read())  # type: ignore[no-any-return]


def _ca(p: PKI) -> ssl.Certificate:
    with open(p.path("ca.pem"), "rb") as f:
        return ssl.Certificate.loadPEM(f.read())


# -- peers


class _Hello(resource.Resource):
    isLeaf = True

    def __init__(self, seen: list[Any]) -> None:
        super().__init__()
        self.seen = seen

    def render(self, request: Any) -> bytes:
        self.seen.append(request.getHeader("host"))
        return b"hello"


def backend(case: TestCase, contextFactory: Any = None) -> tuple[int, list[Any]]:
    """An HTTP backend (TLS with C{contextFactory}); its port and the Host headers seen."""
    seen: list[Any] = []
    site = server.Site(_Hello(seen))
    if contextFactory is None:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
    else:
        port = reactor.listenSSL(0, site, contextFactory, interface="127.0.0.1")
    case.addCleanup(port.stopListening)
    return port.getHost().port, seen


@implementer(IPolicyForHTTPS)
class _Policy:
    def __init__(self, trust: Any, certificate: Any = None) -> None:
        self.trust = trust
        self.certificate = certificate

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return ssl.optionsForClientTLS(
            hostname.decode(), trustRoot=self.trust, clientCertificate=self.certificate
        )


def start(case: TestCase, text: str, admin: bool = False) -> LinkerService:
    makeSite = None
    if admin:
        from linkrouter.admin import makeAdminSite

        makeSite = makeAdminSite
    return startLinker(case, text, makeAdminSite=makeSite)


class HttpTLSTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.pki = pki(self)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    def get(self, url: str, policy: Any = None, host: str = "foo") -> Deferred[Any]:
        agent = Agent(reactor, contextFactory=policy, pool=self.pool) if policy else None
        kwargs: dict[str, Any] = {"agent": agent} if agent else {"pool": self.pool}
        headers: dict[bytes | str, bytes | str] = {"Host": host}
        d = treq.get(url, headers=headers, timeout=10, **kwargs)

        def read(response: Any) -> Deferred[Any]:
            return treq.content(response).addCallback(lambda body: (response, body))

        return d.addCallback(read)  # type: ignore[no-any-return]

    @inlineCallbacks
    def test_serverTLS(self) -> Any:
        """A TLS server answers a client that trusts its CA; plain text gets no HTTP."""
        p = self.pki
        port, seen = backend(self)
        linker = start(
            self,
            f"""
routers:
- protocol: http
  dtab: /svc/foo => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
    tls:
      certPath: {p.path("server.pem")}
      keyPath: {p.path("server-key.pem")}
""",
        )
        rport = routerPort(linker)
        response, body = yield self.get(f"https://127.0.0.1:{rport}/", _Policy(_ca(p)))
        self.assertEqual((response.code, body), (200, b"hello"))
        self.assertEqual(seen, ["foo"])
        plain = yield raw(rport, b"GET / HTTP/1.1\r\nHost: foo\r\n\r\n")
        self.assertFalse(plain.startswith(b"HTTP/"))
        self.assertEqual(len(seen), 1)

    def _clientRouter(self, port: int, tls: str) -> int:
        linker = start(
            self,
            f"""
routers:
- protocol: http
  dtab: /svc/foo => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
  client:
    kind: io.l5d.static
    configs:
    - prefix: /$/inet/{{host}}
      tls:
{tls}
""",
        )
        return routerPort(linker)

    def _tlsBackend(self, requireClient: bool = False) -> tuple[int, list[Any]]:
        me = _load(self.pki, "server")
        options = me.options(_ca(self.pki)) if requireClient else me.options()
        return backend(self, options)

    @inlineCallbacks
    def test_clientTLS(self) -> Any:
        """
        The client verifies the backend's name against C{commonName} (with
        prefix variables); the Host header is unchanged.
        """
        port, seen = self._tlsBackend()
        ca = self.pki.path("ca.pem")
        rport = self._clientRouter(
            port, f'        commonName: "{{host}}"\n        trustCerts: [{ca}]'
        )
        response, body = yield self.get(f"http://127.0.0.1:{rport}/")
        self.assertEqual((response.code, body), (200, b"hello"))
        self.assertEqual(seen, ["foo"])

    @inlineCallbacks
    def test_clientWrongName(self) -> Any:
        """A backend certificate for another name: 502 with a clear l5d-err."""
        port, seen = self._tlsBackend()
        ca = self.pki.path("ca.pem")
        rport = self._clientRouter(
            port, f"        commonName: wrong.test\n        trustCertsBundle: {ca}"
        )
        response, _body = yield self.get(f"http://127.0.0.1:{rport}/")
        self.assertEqual(response.code, 502)
        err = response.headers.getRawHeaders("l5d-err")[0]
        self.assertIn("TLS", err)
        self.assertIn("wrong.test", err, err)
        self.assertEqual(seen, [])

    @inlineCallbacks
    def test_clientUntrusted(self) -> Any:
        """A backend whose CA is not trusted: 502 naming the verification failure."""
        port, _seen = self._tlsBackend()
        other = self.pki.path("client.pem")  # not a CA of the server's certificate
        rport = self._clientRouter(
            port, f"        commonName: localhost\n        trustCerts: [{other}]"
        )
        response, _body = yield self.get(f"http://127.0.0.1:{rport}/")
        self.assertEqual(response.code, 502)
        self.assertIn("TLS", response.headers.getRawHeaders("l5d-err")[0])

    @inlineCallbacks
    def test_disableValidation(self) -> Any:
        """C{disableValidation: true} talks TLS without checking the certificate."""
        port, _seen = self._tlsBackend()
        rport = self._clientRouter(port, "        disableValidation: true")
        response, body = yield self.get(f"http://127.0.0.1:{rport}/")
        self.assertEqual((response.code, body), (200, b"hello"))

    @inlineCallbacks
    def test_tlsDisabled(self) -> Any:
        """A later static entry with C{enabled: false} turns TLS off."""
        port, _seen = backend(self)
        linker = start(
            self,
            f"""
routers:
- protocol: http
  dtab: /svc/foo => /$/inet/127.0.0.1/{port};
  client:
    kind: io.l5d.static
    configs:
    - prefix: /$/inet/{{host}}
      tls:
        commonName: "{{host}}"
    - prefix: /$/inet/127.0.0.1
      tls:
        enabled: false
""",
        )
        response, body = yield self.get(f"http://127.0.0.1:{routerPort(linker)}/")
        self.assertEqual((response.code, body), (200, b"hello"))

    @inlineCallbacks
    def test_mutualTLS(self) -> Any:
        """
        C{requireClientAuth} on both ends: a router server and a backend that
        require client certificates; the router presents C{clientAuth}.
        """
        p = self.pki
        port, seen = self._tlsBackend(requireClient=True)
        linker = start(
            self,
            f"""
routers:
- protocol: http
  dtab: /svc/foo => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
    tls:
      certPath: {p.path("server.pem")}
      keyPath: {p.path("server-key.pem")}
      requireClientAuth: true
      caCertPath: {p.path("ca.pem")}
  client:
    tls:
      commonName: localhost
      trustCerts: [{p.path("ca.pem")}]
      clientAuth:
        certPath: {p.path("client.pem")}
        keyPath: {p.path("client-key.pem")}
""",
        )
        url = f"https://127.0.0.1:{routerPort(linker)}/"
        response, body = yield self.get(url, _Policy(_ca(p), _load(p, "client")))
        self.assertEqual((response.code, body), (200, b"hello"))
        yield self.assertFailure(self.get(url, _Policy(_ca(p))), Exception)
        self.assertEqual(seen, ["foo"])

    @inlineCallbacks
    def test_clientCertRequired(self) -> Any:
        """Without C{clientAuth}, a backend that requires a certificate refuses: 502."""
        port, seen = self._tlsBackend(requireClient=True)
        ca = self.pki.path("ca.pem")
        rport = self._clientRouter(
            port, f"        commonName: localhost\n        trustCerts: [{ca}]"
        )
        response, _body = yield self.get(f"http://127.0.0.1:{rport}/")
        self.assertEqual(response.code, 502)
        self.assertEqual(seen, [])

    @inlineCallbacks
    def test_adminTLS(self) -> Any:
        """C{admin.tls} serves the admin pages over TLS."""
        p = self.pki
        linker = start(
            self,
            f"""
admin:
  ip: 127.0.0.1
  port: 0
  tls:
    certPath: {p.path("server.pem")}
    keyPath: {p.path("server-key.pem")}
routers:
- protocol: http
  dtab: /svc/foo => /$/inet/127.0.0.1/1;
""",
            admin=True,
        )
        (admin,) = [s for s in linker if type(s).__name__ == "_AdminService"]
        port = admin.port.getHost().port  # type: ignore[attr-defined]
        response, body = yield self.get(f"https://127.0.0.1:{port}/admin/ping", _Policy(_ca(p)))
        self.assertEqual((response.code, body), (200, b"pong"))

    @inlineCallbacks
    def test_drain(self) -> Any:
        """Stopping a router with a TLS server drains through the TLS wrapper."""
        p = self.pki
        port, _seen = backend(self)
        config = parseLinkerConfig(
            f"""
routers:
- protocol: http
  dtab: /svc/foo => /$/inet/127.0.0.1/{port};
  servers:
  - port: 0
    tls:
      certPath: {p.path("server.pem")}
      keyPath: {p.path("server-key.pem")}
""",
            "tls.yaml",
            registry(),
        )
        linker = LinkerService.build(config, reactor, registry())
        linker.startService()
        rport = routerPort(linker)
        response, _body = yield self.get(f"https://127.0.0.1:{rport}/", _Policy(_ca(p)))
        self.assertEqual(response.code, 200)
        yield linker.stopService()
        self.assertEqual(linker.routers[0].service.ports, [])  # type: ignore[attr-defined]


class ThriftTLSTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_thriftBothSides(self) -> Any:
        """
        A Thrift router whose client talks TLS to a second Thrift router
        with a TLS server, in front of a plain backend.
        """
        from tests.test_thrift_peers import Backend, EchoHandler, client

        p = pki(self)
        echo = Backend(framed=True, compact=False, handler=EchoHandler("A:"))
        self.addCleanup(echo.stop)
        inner = start(
            self,
            f"""
routers:
- protocol: thrift
  label: inner
  dtab: /svc => /$/inet/127.0.0.1/{echo.port};
  servers:
  - port: 0
    tls:
      certPath: {p.path("server.pem")}
      keyPath: {p.path("server-key.pem")}
""",
        )
        outer = start(
            self,
            f"""
routers:
- protocol: thrift
  label: outer
  dtab: /svc => /$/inet/127.0.0.1/{routerPort(inner)};
  servers:
  - port: 0
  client:
    tls:
      commonName: localhost
      trustCerts: [{p.path("ca.pem")}]
""",
        )
        port = routerPort(outer)

        def call() -> Any:
            c = client(port, framed=True, compact=False)
            try:
                return c.echo("x")
            finally:
                c.close()

        answer = yield deferToThread(call)
        self.assertEqual(answer, "A:x")


class StartupTests(SynchronousTestCase):
    """Files that cannot be used stop start-up with one line naming them."""

    def setUp(self) -> None:
        self.pki = pki(self)

    def build(self, tls: str, where: str = "server") -> str:
        if where == "server":
            text = f"routers:\n- protocol: http\n  servers:\n  - port: 0\n    tls:\n{tls}\n"
        else:
            text = f"routers:\n- protocol: http\n  client:\n    tls:\n{tls}\n"
        config = parseLinkerConfig(text, "tls.yaml", registry())
        e = self.assertRaises(StartupError, LinkerService.build, config, reactor, registry())
        message = str(e)
        self.assertNotIn("\n", message)
        return message

    def test_missingFile(self) -> None:
        message = self.build("      certPath: /nonexistent/cert.pem\n      keyPath: /x/key.pem")
        self.assertIn("routers[0].servers[0].tls.certPath", message)
        self.assertIn("/nonexistent/cert.pem", message)
        self.assertIn("No such file", message)

    def test_keyMismatch(self) -> None:
        p = self.pki
        message = self.build(
            f"      certPath: {p.path('server.pem')}\n      keyPath: {p.path('other-key.pem')}"
        )
        self.assertIn("tls.keyPath", message)
        self.assertIn("is not the key of", message)

    def test_notPEM(self) -> None:
        p = self.pki
        message = self.build(
            f"      certPath: {p.path('server-key.pem')}\n      keyPath: {p.path('server-key.pem')}"
        )
        self.assertIn("holds no PEM certificate", message)

    def test_clientTrustMissing(self) -> None:
        message = self.build(
            "      commonName: x\n      trustCerts: [/nonexistent/ca.pem]", where="client"
        )
        self.assertIn("routers[0].client.tls.trustCerts[0]", message)
        self.assertIn("/nonexistent/ca.pem", message)

    def test_unknownCipher(self) -> None:
        p = self.pki
        message = self.build(
            f"      certPath: {p.path('server.pem')}\n      keyPath: {p.path('server-key.pem')}\n"
            "      ciphers: [NOT-A-CIPHER]"
        )
        self.assertIn("NOT-A-CIPHER", message)


class ConfigTests(SynchronousTestCase):
    """The C{tls} keys are checked when the configuration is read."""

    def problems(self, text: str) -> list[str]:
        try:
            parseLinkerConfig(text, "tls.yaml", registry())
        except ConfigError as e:
            return [f"{p.path}: {p.message}" for p in e.problems]
        return []

    def test_serverRequired(self) -> None:
        found = self.problems(
            "routers:\n- protocol: http\n  servers:\n  - port: 0\n    tls: {keyPath: k}\n"
        )
        self.assertEqual(found, ["routers[0].servers[0].tls.certPath: required key is missing"])

    def test_clientChecks(self) -> None:
        found = self.problems(
            """
routers:
- protocol: http
  client:
    kind: io.l5d.static
    configs:
    - prefix: /$/inet/{host}
      tls:
        commonName: "{service}.test"
        protocols: [SSLv3]
    - prefix: /
      tls:
        trustCerts: [a]
        trustCertsBundle: b
    - prefix: /x
      tls:
        disableValidation: true
        clientAuth: {certPath: c, keyPath: k}
"""
        )
        self.assertEqual(
            sorted(found),
            sorted(
                [
                    "routers[0].client.configs[0].tls.protocols: unknown protocol 'SSLv3'"
                    " (supported: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)",
                    "routers[0].client.configs[0].tls.commonName: {service} is not captured by"
                    " this entry's prefix",
                    "routers[0].client.configs[1].tls.commonName: required unless"
                    " disableValidation is true",
                    "routers[0].client.configs[1].tls.trustCertsBundle: give trustCerts or"
                    " trustCertsBundle, not both",
                    "routers[0].client.configs[2].tls.clientAuth: disableValidation: true is"
                    " incompatible with clientAuth",
                ]
            ),
        )

    def test_commonNameCaptures(self) -> None:
        """Each matching entry's captures fill its own C{commonName}; later entries win."""
        config = parseLinkerConfig(
            """
routers:
- protocol: http
  client:
    kind: io.l5d.static
    configs:
    - prefix: /#/io.l5d.fs/{service}
      tls:
        commonName: "{service}.linkerd.io"
        protocols: [TLSv1.2, TLSv1.3]
    - prefix: /#/io.l5d.fs/special
      failFast: true
""",
            "tls.yaml",
            registry(),
        )
        client = config.routers[0].client
        tls = client.forPath(Path.read("/#/io.l5d.fs/special/x")).tls
        assert tls is not None
        self.assertEqual(
            (tls.commonName, tls.protocols), ("special.linkerd.io", ("TLSv1.2", "TLSv1.3"))
        )
        self.assertIsNone(client.forPath(Path.read("/#/other")).tls)
        self.assertEqual(
            ClientTLS(commonName="{a}-{b}").withCaptures({"a": "x"}).commonName, "x-{b}"
        )
