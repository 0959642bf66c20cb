from hypothesis import given
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import ParseError, Path

from ._naming_strategies import paths


class PathReadTests(SynchronousTestCase):
    def assertError(self, text: str, message: str) -> None:
        e = self.assertRaises(ParseError, Path.read, text)
        self.assertEqual(str(e), message)

    def test_simple(self) -> None:
        self.assertEqual(Path.read("/foo/bar"), Path(b"foo", b"bar"))
        self.assertEqual(Path.read("/"), Path())
        self.assertEqual(Path.read("  /foo  "), Path(b"foo"))

    def test_escapes(self) -> None:
        self.assertEqual(Path.read(r"/\x66\x6f\x6F"), Path(b"foo"))
        self.assertEqual(Path.read(r"/a\x2fb/\xff"), Path(b"a/b", b"\xff"))

    def test_comments(self) -> None:
        self.assertEqual(Path.read("/foo #x"), Path(b"foo"))
        self.assertEqual(Path.read("/foo#bar"), Path(b"foo#bar"))
        self.assertEqual(Path.read("# c\n/foo"), Path(b"foo"))

    def test_javaWhitespace(self) -> None:
        self.assertEqual(Path.read("\x1c/a\u3000"), Path(b"a"))
        self.assertRaises(ParseError, Path.read, "\xa0/a")
        self.assertRaises(ParseError, Path.read, "/a\x85")

    def test_errors(self) -> None:
        self.assertError("", "'/' expected but end of input found at '[]'")
        self.assertError("/foo/bar/", "label char expected but end of input found at '/foo/bar/[]'")
        self.assertError("/foo^bar", "end of input expected but '^' found at '/foo[^]bar'")
        self.assertError("invalid-param", "'/' expected but 'i' found at '[i]nvalid-param'")
        self.assertError("//foo", "end of input expected but '/' found at '/[/]foo'")
        self.assertError("/foo//bar", "label char expected but '/' found at '/foo/[/]bar'")
        self.assertError(r"/a\x4g", r"hex char expected but 'g' found at '/a\x4[g]'")
        self.assertError(r"/a\q", r"'x' expected but 'q' found at '/a\[q]'")
        self.assertError("/a*", "end of input expected but '*' found at '/a[*]'")


class PathTests(SynchronousTestCase):
    def test_show(self) -> None:
        self.assertEqual(Path(b"a/b").show, r"/\x61\x2f\x62")
        self.assertEqual(Path().show, "/")
        self.assertEqual(Path.of("svc", "a.b").show, "/svc/a.b")

    def test_operations(self) -> None:
        p = Path.read("/a/b/c")
        self.assertTrue(p.startswith(Path.read("/a/b")))
        self.assertFalse(p.startswith(Path.read("/a/c")))
        self.assertFalse(Path.read("/s#/foo").startswith(Path.read("/s")))
        self.assertEqual(p.take(2), Path.read("/a/b"))
        self.assertEqual(p.drop(2), Path.read("/c"))
        self.assertEqual(p.drop(5), Path())
        self.assertEqual(Path.read("/a") + Path.read("/b/c"), p)
        self.assertEqual(len(p), 3)
        self.assertEqual(list(p), [b"a", b"b", b"c"])
        self.assertLess(Path.read("/a"), Path.read("/a/b"))
        self.assertEqual({p: 1}[Path.read("/a/b/c")], 1)

    def test_immutable(self) -> None:
        self.assertRaises(AttributeError, setattr, Path(), "elems", ())

    def test_invalidElements(self) -> None:
        self.assertRaises(ValueError, Path, b"")
        self.assertRaises(ValueError, Path, "a")  # type: ignore[arg-type]

    @given(paths)
    def test_roundTrip(self, path: Path) -> None:
        self.assertEqual(Path.read(path.show), path)
