"""
Tests for the C{io.l5d.rewrite} namer (L{namers.rewrite}).
"""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Document
from linkrouter.interfaces import INamer, INamerPlugin
from linkrouter.naming import (
    ADDR_NEG,
    NEG,
    Activity,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Leaf,
    Ok,
    Path,
    Var,
)
from namers.rewrite import PathPattern, PathTemplate, RewriteNamer, rewriteNamer


def P(text):
    return Path.read(text)


def namer(pattern, name):
    return RewriteNamer(PathPattern.read(pattern), PathTemplate.read(name))


def looked(n, path):
    return n.lookup(P(path)).state


class RewriteNamerTests(SynchronousTestCase):
    def test_provides(self):
        self.assertTrue(INamer.providedBy(namer("/a", "/b")))

    def test_matchesPrefixAndDropsTheRest(self):
        self.assertEqual(
            looked(namer("/one/two", "/success"), "/one/two/three"), Ok(Leaf(P("/success")))
        )

    def test_exact(self):
        self.assertEqual(looked(namer("/one", "/two"), "/one"), Ok(Leaf(P("/two"))))

    def test_wildcard(self):
        self.assertEqual(looked(namer("/one/*/three", "/ok"), "/one/two/three"), Ok(Leaf(P("/ok"))))

    def test_mismatch(self):
        self.assertEqual(looked(namer("/one/*/four", "/ok"), "/one/two/three"), Ok(NEG))

    def test_tooShort(self):
        self.assertEqual(looked(namer("/one/two", "/ok"), "/one"), Ok(NEG))

    def test_captureAndReorder(self):
        n = namer("/{svc}/{env}/api", "/srv/{env}/{svc}")
        self.assertEqual(looked(n, "/users/prod/api/v1"), Ok(Leaf(P("/srv/prod/users"))))

    def test_captureInsideSegment(self):
        n = namer("/{svc}/{env}", "/dns/{svc}.{env}.example")
        self.assertEqual(looked(n, "/users/prod"), Ok(Leaf(P("/dns/users.prod.example"))))

    def test_capturedTwice(self):
        n = namer("/{svc}", "/{svc}/{svc}")
        self.assertEqual(looked(n, "/a"), Ok(Leaf(P("/a/a"))))

    def test_escapedBytes(self):
        n = namer("/a\\x20b/{x}", "/c/{x}")
        self.assertEqual(looked(n, "/a\\x20b/\\xff"), Ok(Leaf(Path(b"c", b"\xff"))))

    def test_rootPattern(self):
        self.assertEqual(looked(namer("/", "/all"), "/"), Ok(Leaf(P("/all"))))
        self.assertEqual(looked(namer("/", "/all"), "/x/y"), Ok(Leaf(P("/all"))))

    def test_emptyName(self):
        self.assertEqual(looked(namer("/{x}", "/"), "/a"), Ok(Leaf(P("/"))))

    @given(st.lists(st.binary(min_size=1, max_size=8), min_size=2, max_size=6))
    def test_swapProperty(self, elems):
        n = namer("/{a}/{b}", "/{b}/{a}/x")
        result = n.lookup(Path(*elems)).state
        self.assertEqual(result, Ok(Leaf(Path(elems[1], elems[0], b"x"))))

    def test_rebindsThroughDtab(self):
        @implementer(INamer)
        class Final:
            def lookup(self, path):
                return Activity.value(Leaf(Bound(P("/#/final") + path, Var(ADDR_NEG), P("/"))))

        interpreter = ConfiguredNamersInterpreter(
            [(P("/#/rw"), namer("/{s}/api", "/final/{s}")), (P("/#/final"), Final())]
        )
        tree = interpreter.bind(Dtab.read("/svc=>/#/rw;/final=>/#/final"), P("/svc/web/api"))
        state = tree.state
        assert isinstance(state, Ok)
        self.assertEqual({b.id for b in state.value.eval() or ()}, {P("/#/final/web")})


class ParseTests(SynchronousTestCase):
    def test_badPatterns(self):
        for text, why in [
            ("a/b", "must start with '/'"),
            ("/a//b", "empty segment"),
            ("/{}", "bad variable name"),
            ("/{a b}", "bad variable name"),
            ("/{a}/{a}", "appears twice"),
            ("/a b", "bad segment"),
            ("/{a", "bad segment"),
        ]:
            e = self.assertRaises(ValueError, PathPattern.read, text)
            self.assertIn(why, str(e), text)

    def test_badNames(self):
        for text, why in [
            ("srv", "must start with '/'"),
            ("/a//b", "empty segment"),
            ("/{a", "unbalanced braces"),
            ("/a}", "unbalanced braces"),
            ("/{}", "bad variable name"),
            ("/a b", "bad segment"),
        ]:
            e = self.assertRaises(ValueError, PathTemplate.read, text)
            self.assertIn(why, str(e), text)


class PluginTests(SynchronousTestCase):
    def parse(self, text):
        registry = PluginRegistry.fromProviders([(INamerPlugin, rewriteNamer, "test")])
        document = Document("test.yaml", registry)
        section = document.load(text)
        assert section is not None
        result = section.parseAs(INamerPlugin)
        return result, document.problems

    def test_parse(self):
        result, problems = self.parse(
            'kind: io.l5d.rewrite\nprefix: /rewrite\npattern: "/{service}/api"\n'
            'name: "/srv/{service}"\n'
        )
        self.assertEqual(problems, [])
        built = rewriteNamer.build(result.config, None)
        self.assertEqual(looked(built, "/users/api"), Ok(Leaf(P("/srv/users"))))

    def test_required(self):
        _, problems = self.parse("kind: io.l5d.rewrite\n")
        self.assertEqual(sorted(p.path for p in problems), ["name", "pattern", "prefix"])

    def test_badPattern(self):
        _, problems = self.parse('kind: io.l5d.rewrite\nprefix: /r\npattern: "x"\nname: "/y"\n')
        self.assertEqual([(p.path, p.line) for p in problems], [("pattern", 3)])
        self.assertIn("must start with '/'", problems[0].message)

    def test_unknownVariable(self):
        _, problems = self.parse(
            'kind: io.l5d.rewrite\nprefix: /r\npattern: "/{a}"\nname: "/{a}/{b}"\n'
        )
        self.assertEqual([p.path for p in problems], ["name"])
        self.assertIn("{b}", problems[0].message)

    def test_dropin(self):
        from twisted.plugins import linkrouter_namers

        self.assertIs(linkrouter_namers.rewriteNamer, rewriteNamer)
