"""
The parsers' fast path (common syntax split with C{str} methods) agrees with
the recursive-descent scanners on every input, errors included.
"""

from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import Dtab, NameTree, ParseError, Path
from linkrouter.naming.dtab import _FAST_DTAB_RE, DtabScanner, parseDtab
from linkrouter.naming.nametree import _FAST_TREE_RE, TreeScanner, _readTree
from linkrouter.naming.path import _FAST_PATH_RE, Scanner, _readPath

from ._naming_strategies import dtabs, grammarTexts, paths, spacedShows, trees


def outcome(parse: Callable[[str], object], text: str) -> object:
    """What C{parse} makes of C{text}: a value, or its error message."""
    try:
        return parse(text)
    except ParseError as e:
        return str(e)


def scanned(scanner: type[Scanner], rule: str) -> Callable[[str], Any]:
    """The full scanner's parse of all of a text by C{rule}."""

    def parse(text: str) -> object:
        s = scanner(text)
        value = getattr(s, rule)()
        s.end()
        return value

    return parse


scanDtab = scanned(DtabScanner, "dtab")
scanTree = scanned(TreeScanner, "tree")
scanPath = scanned(Scanner, "path")
readTree = _readTree.__wrapped__
readPath = _readPath.__wrapped__


class FastPathTests(SynchronousTestCase):
    def test_commonSyntaxIsFast(self) -> None:
        """
        The headers and trees people write take the fast path, and parse as
        the scanner parses them.
        """
        for text in [
            "/svc/users=>/#/io.l5d.fs/users-canary;/svc/web=>/$/inet/127.0.0.1/9000;/host=>/svc",
            " /svc/* => /a | ~ ;\n/x=>1 * /b & 0.25*/c & .5 * $; ",
            "/=>!;",
            "",
        ]:
            self.assertIsNotNone(_FAST_DTAB_RE.fullmatch(text), text)
            self.assertEqual(parseDtab(text), scanDtab(text))
        self.assertIsNotNone(_FAST_TREE_RE.fullmatch("/a | 2 * /b & /c"))
        self.assertEqual(readTree("0.5*/a"), scanTree("0.5*/a"))
        self.assertIsNotNone(_FAST_PATH_RE.fullmatch(" /a/b "))

    def test_unusualSyntaxIsNot(self) -> None:
        """Escapes, comments, parentheses and exotic whitespace go to the scanner."""
        for text in [r"/a=>/\x41", "/a=>/b # c", "/a=>(/b)", "/a=>\u3000/b", "/a=>/b;;"]:
            self.assertIsNone(_FAST_DTAB_RE.fullmatch(text), text)
        self.assertEqual(Dtab.read(r"/a=>/\x41 # c").show, "/a=>/A")

    @given(st.one_of(grammarTexts, spacedShows(dtabs)))
    def test_dtab(self, text: str) -> None:
        self.assertEqual(outcome(parseDtab, text), outcome(scanDtab, text))

    @given(st.one_of(grammarTexts, spacedShows(trees)))
    def test_tree(self, text: str) -> None:
        self.assertEqual(outcome(readTree, text), outcome(scanTree, text))

    @given(st.one_of(grammarTexts, paths.map(lambda p: p.show)))
    def test_path(self, text: str) -> None:
        self.assertEqual(outcome(readPath, text), outcome(scanPath, text))

    @given(dtabs)
    def test_shownDtabs(self, dtab: Dtab) -> None:
        self.assertEqual(parseDtab(dtab.show), dtab)

    @given(trees)
    def test_shownTrees(self, tree: NameTree[Path]) -> None:
        self.assertEqual(readTree(tree.show), tree)
