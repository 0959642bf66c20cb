from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import (
    ADDR_NEG,
    ADDR_PENDING,
    EMPTY,
    FAIL,
    NEG,
    AddrBound,
    Address,
    AddrFailed,
    Leaf,
    Path,
    UnknownNamer,
)
from linkrouter.naming.system import SystemNamer


def P(text: str) -> Path:
    return Path.read(text)


class SystemNamerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.asked: list[str] = []
        self.answers: dict[str, Deferred[Sequence[str]]] = {}

        def resolver(host: str) -> Deferred[Sequence[str]]:
            self.asked.append(host)
            return self.answers.get(host, succeed([]))

        self.namer = SystemNamer(resolver)

    def bound(self, path: str):
        tree = self.namer.lookup(P(path))
        assert isinstance(tree, Leaf)
        return tree.value

    def test_inetForms(self) -> None:
        b = self.bound("/$/inet/1234/5678")
        self.assertEqual((b.id, b.residual), (P("/$/inet/1234/5678"), P("/")))
        b = self.bound("/$/inet/1234/foobar")
        self.assertEqual((b.id, b.residual), (P("/$/inet/1234"), P("/foobar")))
        self.assertEqual(b.addr.sample(), AddrBound(frozenset([Address("127.0.0.1", 1234)])))
        b = self.bound("/$/fixedinet/::1/80/x")
        self.assertEqual(b.addr.sample(), AddrBound(frozenset([Address("::1", 80)])))
        self.assertEqual(
            self.bound("/$/inet/h/70000").addr.sample(), AddrFailed("port out of range: 70000")
        )
        self.assertRaises(UnknownNamer, self.namer.lookup, P("/$/inet/host/notaport"))
        self.assertRaises(UnknownNamer, self.namer.lookup, P("/$/inet"))

    def test_inetShortIPv4(self) -> None:
        """
        The short IPv4 forms Linkerd configurations use (C{127.1}) are
        addresses, bound at once without asking the resolver.
        """
        b = self.bound("/$/inet/127.1/9990")
        self.assertEqual(b.addr.sample(), AddrBound(frozenset({Address("127.0.0.1", 9990)})))
        self.assertEqual(b.id, P("/$/inet/127.1/9990"))
        self.assertEqual(self.asked, [])

    def test_inetResolvesWhileObserved(self) -> None:
        d: Deferred[Sequence[str]] = Deferred()
        self.answers["svc.example"] = d
        addr = self.bound("/$/inet/svc.example/80").addr
        seen: list[object] = []
        c = addr.observe(seen.append)
        self.assertEqual(seen, [ADDR_PENDING])
        d.callback(["10.0.0.1", "10.0.0.2"])
        self.assertEqual(
            seen[-1], AddrBound(frozenset([Address("10.0.0.1", 80), Address("10.0.0.2", 80)]))
        )
        c.close()
        self.assertEqual(self.asked, ["svc.example"])

    def test_inetUnknownAndFailure(self) -> None:
        self.assertIs(self.bound("/$/inet/nowhere.example/80").addr.sample(), ADDR_NEG)
        self.answers["bad.example"] = fail(OSError("boom"))
        self.assertEqual(
            self.bound("/$/inet/bad.example/80").addr.sample(), AddrFailed("bad.example: boom")
        )

    def test_simple(self) -> None:
        self.assertIs(self.namer.lookup(P("/$/fail")), FAIL)
        self.assertIs(self.namer.lookup(P("/$/fail/foo/bar")), FAIL)
        self.assertIs(self.namer.lookup(P("/$/nil/x")), EMPTY)
        self.assertIs(self.namer.lookup(P("/$")), NEG)
        self.assertIs(self.namer.lookup(P("/foo")), NEG)
        e = self.assertRaises(UnknownNamer, self.namer.lookup, P("/$/com.example.Nope/x"))
        self.assertEqual(str(e), "Unknown namer: com.example.Nope for path: /$/com.example.Nope/x")

    def test_rinet(self) -> None:
        b = self.bound("/$/io.buoyant.rinet/8080/127.0.0.1/rest")
        self.assertEqual((b.id, b.residual), (P("/$/io.buoyant.rinet/8080/127.0.0.1"), P("/rest")))
        self.assertEqual(b.addr.sample(), AddrBound(frozenset([Address("127.0.0.1", 8080)])))
        self.assertIs(self.namer.lookup(P("/$/io.buoyant.rinet/8080")), NEG)

    def rewrite(self, path: str):
        return self.namer.lookup(P(path))

    def test_hostport(self) -> None:
        self.assertEqual(
            self.rewrite("/$/io.buoyant.hostportPfx/pfx/foo:8080/rest"),
            Leaf(P("/pfx/foo/8080/rest")),
        )
        self.assertEqual(
            self.rewrite("/$/io.buoyant.porthostPfx/pfx/foo:http/rest"),
            Leaf(P("/pfx/http/foo/rest")),
        )
        self.assertIs(self.rewrite("/$/io.buoyant.hostportPfx/pfx/foo"), NEG)
        self.assertIs(self.rewrite("/$/io.buoyant.hostportPfx/pfx/foo:BAD"), NEG)
        self.assertIs(self.rewrite("/$/io.buoyant.hostportPfx/pfx"), NEG)

    def test_http(self) -> None:
        self.assertEqual(
            self.rewrite("/$/io.buoyant.http.domainToPathPfx/pfx/foo.buoyant.io/r"),
            Leaf(P("/pfx/io/buoyant/foo/r")),
        )
        self.assertEqual(
            self.rewrite("/$/io.buoyant.http.subdomainOfPfx/buoyant.io/pfx/foo.buoyant.io:80/r"),
            Leaf(P("/pfx/foo/r")),
        )
        self.assertIs(
            self.rewrite("/$/io.buoyant.http.subdomainOfPfx/buoyant.io/pfx/foo.example.com"), NEG
        )
        self.assertIs(self.rewrite("/$/io.buoyant.http.domainToPathPfx/pfx/a%b"), NEG)
