from hypothesis import given
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import (
    EMPTY,
    FAIL,
    NEG,
    Alt,
    Leaf,
    NameTree,
    ParseError,
    Path,
    Union,
    Weighted,
)
from linkrouter.naming.nametree import formatWeight

from ._naming_strategies import anyTrees, trees


def L(text: str) -> NameTree[Path]:
    return Leaf(Path.read(text))


def W(weight: float, tree: NameTree[Path]) -> Weighted[Path]:
    return Weighted(weight, tree)


class ReadTests(SynchronousTestCase):
    def test_precedence(self) -> None:
        self.assertEqual(
            NameTree.read("/a | /b & /c"), Alt(L("/a"), Union(W(1.0, L("/b")), W(1.0, L("/c"))))
        )
        self.assertEqual(NameTree.read("2 * /foo"), L("/foo"))
        self.assertEqual(NameTree.read("0.5 * /a | /b"), Alt(L("/a"), L("/b")))
        self.assertEqual(NameTree.read("((/a))"), L("/a"))
        self.assertEqual(NameTree.read("/a | (/b | /c)"), Alt(L("/a"), Alt(L("/b"), L("/c"))))
        self.assertEqual(NameTree.read("! | ~ | $"), Alt(FAIL, NEG, EMPTY))

    def test_numbers(self) -> None:
        for text, weight in [("1", 1.0), ("1.", 1.0), (".5", 0.5), ("007", 7.0)]:
            self.assertEqual(
                NameTree.read(f"{text} * /a & /b"), Union(W(weight, L("/a")), W(1.0, L("/b")))
            )

    def test_errors(self) -> None:
        cases = {
            "": "simple expected but end of input found at '[]'",
            "()": "simple expected but ')' found at '([)]'",
            "/a |": "simple expected but end of input found at '/a |[]'",
            "/a & ": "simple expected but end of input found at '/a & []'",
            ". * /a": "weight expected but '.' found at '.[ ]* /a'",
            "1.2.3*/a": "number char expected but '.' found at '1.2[.]3*/a'",
            "-1 * /a": "simple expected but '-' found at '[-]1 * /a'",
            "1e3 * /a": "'*' expected but 'e' found at '1[e]3 * /a'",
            "(/a": "')' expected but end of input found at '(/a[]'",
        }
        for text, message in cases.items():
            e = self.assertRaises(ParseError, NameTree.read, text)
            self.assertEqual(str(e), message)

    def test_deepNesting(self) -> None:
        e = self.assertRaises(ParseError, NameTree.read, "(" * 5000 + "/a" + ")" * 5000)
        self.assertIn("nested", str(e))


class ShowTests(SynchronousTestCase):
    def test_show(self) -> None:
        for text, shown in [
            ("(/a & /b) | /c", "/a & /b | /c"),
            ("/a | (/b | /c)", "/a | (/b | /c)"),
            ("/a & (/b & /c)", "/a & (/b & /c)"),
            ("2 * (/a | /b) & /c", "2.00*(/a | /b) & /c"),
            ("0.5*/a & 10*/c", "0.50*/a & 10.00*/c"),
            ("/a & (/b | /c)", "/a & (/b | /c)"),
            ("! | ~ | $", "! | ~ | $"),
        ]:
            self.assertEqual(NameTree.read(text).show, shown)

    def test_singleChild(self) -> None:
        self.assertEqual(Union(W(2.0, L("/a"))).show, "/a")
        self.assertEqual(Alt(Alt(L("/a"), L("/b"))).show, "/a | /b")

    def test_halfUp(self) -> None:
        self.assertEqual(formatWeight(0.125), "0.13")
        self.assertEqual(formatWeight(1.005), "1.01")
        self.assertEqual(formatWeight(2.675), "2.68")
        self.assertEqual(formatWeight(0.999), "1.00")

    @given(trees)
    def test_roundTrip(self, tree: NameTree[Path]) -> None:
        self.assertEqual(NameTree.read(tree.show), tree)


class SimplifyEvalTests(SynchronousTestCase):
    def test_simplify(self) -> None:
        s = lambda text: NameTree.read(text).simplified  # noqa: E731
        self.assertEqual(s("~ | /a"), L("/a"))
        self.assertEqual(s("/a | ! | /b"), Alt(L("/a"), FAIL))
        self.assertEqual(s("$ | /b"), Alt(EMPTY, L("/b")))
        self.assertEqual(s("! & !"), NEG)
        self.assertEqual(s("/a & ~ & 2*/b"), Union(W(1.0, L("/a")), W(2.0, L("/b"))))
        self.assertEqual(s("3 * /a & !"), L("/a"))
        self.assertEqual(s("$ & /a"), Union(W(1.0, EMPTY), W(1.0, L("/a"))))
        self.assertEqual(Alt().simplified, NEG)
        self.assertEqual(Union().simplified, NEG)

    def test_eval(self) -> None:
        e = lambda text: NameTree.read(text).eval()  # noqa: E731
        self.assertEqual(e("/a & /b"), frozenset([Path.read("/a"), Path.read("/b")]))
        self.assertEqual(e("~ | /b"), frozenset([Path.read("/b")]))
        self.assertIsNone(e("! | /b"))
        self.assertIsNone(e("~"))
        self.assertEqual(e("$ | /b"), frozenset())
        self.assertEqual(e("! & /a"), frozenset([Path.read("/a")]))
        # A one-child union is its child, even when that child fails.
        self.assertIsNone(Alt(Union(W(0.5, FAIL)), L("/b")).eval())

    def test_map(self) -> None:
        tree = NameTree.read("/a | 2*/b & !").map(lambda p: p + Path.read("/x"))
        self.assertEqual(tree.show, "/a/x | 2.00*/b/x & !")

    @given(anyTrees)
    def test_simplifiedIsFixpoint(self, tree: NameTree[Path]) -> None:
        self.assertEqual(tree.simplified.simplified, tree.simplified)

    @given(anyTrees)
    def test_simplifiedPreservesEval(self, tree: NameTree[Path]) -> None:
        self.assertEqual(tree.simplified.eval(), tree.eval())
