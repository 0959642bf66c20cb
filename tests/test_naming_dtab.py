from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import NEG, Alt, Dentry, Dtab, Leaf, NameTree, ParseError, Path
from linkrouter.naming.dtab import ANY_ELEM, NOP, Prefix, PrefixElem

from ._naming_strategies import dtabs, paths


def P(text: str) -> Path:
    return Path.read(text)


_fewElems: list[PrefixElem] = [b"a", b"b", ANY_ELEM]
_crowded = st.builds(
    Dentry,
    st.lists(st.sampled_from(_fewElems), max_size=3).map(lambda es: Prefix(*es)),
    st.integers(0, 9).map(lambda i: Leaf(Path.of(str(i)))),
)
"""Dentries whose prefixes overlap often."""


class ReadShowTests(SynchronousTestCase):
    def test_read(self) -> None:
        d = Dtab.read(" /a => /b ; # comment\n /c/*/d=>/e | /f ;")
        self.assertEqual(len(d), 2)
        self.assertEqual(d.show, "/a=>/b;/c/*/d=>/e | /f")
        self.assertEqual(Dtab.read(""), Dtab.empty())
        self.assertEqual(Dtab.read("  # only a comment"), Dtab.empty())
        self.assertEqual(Dtab.empty().show, "")
        self.assertEqual(Dtab.read("/#foo=>/srv#/prod").show, "/#foo=>/srv#/prod")

    def test_errors(self) -> None:
        cases = {
            ";": "'/' expected but ';' found at '[;]'",
            "/a=>/b;;": "'/' expected but ';' found at '/a=>/b;[;]'",
            "/a=>/b\n/c=>/d": "end of input expected but '/' found at '/a=>/b\n[/]c=>/d'",
            "/foo/*bar=>/a": "'=' expected but 'b' found at '/foo/*[b]ar=>/a'",
            "/a/**=>/b": "'=' expected but '*' found at '/a/*[*]=>/b'",
            "/a/=>/b": "label char expected but '=' found at '/a/[=]>/b'",
            "/a = > /b": "'>' expected but ' ' found at '/a =[ ]> /b'",
            "/a=>": "simple expected but end of input found at '/a=>[]'",
        }
        for text, message in cases.items():
            e = self.assertRaises(ParseError, Dtab.read, text)
            self.assertEqual(str(e), message)

    def test_dentry(self) -> None:
        self.assertEqual(Dentry.read("/a/*/c => /d").show, "/a/*/c=>/d")
        self.assertEqual(NOP.show, r"/\x2f=>~")
        self.assertEqual(Dentry(P("/a"), Leaf(P("/b"))), Dentry.read("/a=>/b"))

    def test_operations(self) -> None:
        a, b = Dtab.read("/a=>/b"), Dtab.read("/c=>/d")
        self.assertEqual((a + b).show, "/a=>/b;/c=>/d")
        self.assertEqual(a + Dtab.empty(), a)
        self.assertEqual((a + Dentry.read("/x=>/y")).show, "/a=>/b;/x=>/y")
        self.assertEqual((a + b).stripPrefix(a), b)
        self.assertEqual(b.stripPrefix(a), b)
        self.assertEqual(Dtab.read("/a=>~ | ~;/b=>/c").simplified.show, "/b=>/c")
        self.assertEqual(hash(Dtab.read("/a=>/b")), hash(a))

    @given(dtabs)
    def test_roundTrip(self, dtab: Dtab) -> None:
        self.assertEqual(Dtab.read(dtab.show), dtab)


class LookupTests(SynchronousTestCase):
    def test_lookup(self) -> None:
        d = Dtab.read("/a/*/c => /d;/foo=>/a;/foo=>~;/=>/root;/s=>/t")
        self.assertEqual(d.lookup(P("/a/b/c/e/f")).show, "/root/a/b/c/e/f | /d/e/f")
        self.assertEqual(d.lookup(P("/foo/x")).show, "/root/foo/x | ~ | /a/x")
        self.assertEqual(d.lookup(P("/")), Leaf(P("/root")))
        self.assertEqual(Dtab.read("/s=>/t").lookup(P("/s#/foo")), NEG)
        self.assertEqual(Dtab.read("/s=>/").lookup(P("/s/x")), Leaf(P("/x")))
        self.assertEqual(Dtab.read("/s=>~").lookup(P("/s/x")), NEG)
        self.assertEqual(Dtab.read("/foo=>/a;/foo=>~").lookup(P("/foo")), Alt(NEG, Leaf(P("/a"))))
        self.assertEqual(
            Dtab.read("/s=>/a & 2*/b").lookup(P("/s/x")), NameTree.read("/a/x & 2*/b/x")
        )

    def test_concatenationWins(self) -> None:
        base = Dtab.read(";".join(f"/s{i}=>/t{i}" for i in range(50)))
        local = Dtab.read("/s7=>/override")
        self.assertEqual((base + local).lookup(P("/s7/x")).show, "/override/x | /t7/x")
        self.assertEqual((base + local).lookup(P("/s8")).show, "/t8")
        # Long chains of concatenation still look up in order.
        chained = Dtab.empty()
        for i in range(10):
            chained = chained + Dentry.read(f"/s=>/t{i}")
        self.assertEqual(
            chained.lookup(P("/s")).show, " | ".join(f"/t{i}" for i in reversed(range(10)))
        )

    def test_documentedExample(self) -> None:
        d = Dtab.read(
            "/zk#=>/$/com.twitter.serverset;/zk=>/zk#;/s##=>/zk/zk.local.twitter.com:2181;"
            "/s#=>/s##/prod;/s=>/s#"
        )
        steps = [P("/s/crawler")]
        for _ in range(5):
            tree = d.lookup(steps[-1])
            assert isinstance(tree, Leaf)
            steps.append(tree.value)
        self.assertEqual(
            steps[-1].show, "/$/com.twitter.serverset/zk.local.twitter.com:2181/prod/crawler"
        )
        staged = d + Dentry.read("/s#=>/s##/staging")
        self.assertEqual(
            staged.lookup(P("/s#/crawler")).show, "/s##/staging/crawler | /s##/prod/crawler"
        )

    def test_prefixMatches(self) -> None:
        self.assertTrue(Prefix.read("/").matches(P("/")))
        self.assertTrue(Prefix.read("/*").matches(P("/x/y")))
        self.assertFalse(Prefix.read("/*/y").matches(P("/x")))

    @given(st.lists(st.lists(_crowded, max_size=5).map(Dtab), min_size=1, max_size=3), paths)
    def test_matchingAgreesWithScan(self, parts: list[Dtab], suffix: Path) -> None:
        """
        The prefix index (through concatenations) finds what a scan of every
        entry, last first, finds, for paths that each prefix matches.
        """
        dtab = sum(parts, Dtab.empty())
        for d in dtab:
            for elem in (b"a", b"c"):
                path = Path(*[elem if e is ANY_ELEM else e for e in d.prefix.elems]) + suffix  # type: ignore[arg-type]
                expected = [e for e in reversed(dtab.entries) if e.prefix.matches(path)]
                self.assertIn(d, expected)
                self.assertEqual(dtab.matching(path), expected)
