# -*- test-case-name: tests.test_naming_path -*-
"""
L{Path}: a sequence of non-empty byte-string elements, and the scanner that
every naming parser (paths, name trees, dentries, dtabs) is built on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, NoReturn

_SHOWABLE_CLASS = r"0-9A-Za-z_:.#$%\-"
_SHOWABLE_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:.#$%-"
_LABEL = rf"(?:[{_SHOWABLE_CLASS}]|\\x[0-9a-fA-F]{{2}})+"
_LABEL_RE = re.compile(_LABEL)
_PATH_RE = re.compile(rf"/(?:{_LABEL}(?:/{_LABEL})*)?")
_ESCAPE_RE = re.compile(r"\\x([0-9a-fA-F]{2})")
_HEX = frozenset("0123456789abcdefABCDEF")
_LABEL_START = frozenset(_SHOWABLE_BYTES.decode() + "\\")

# Java's Character.isWhitespace: ASCII controls \t-\r and \x1c-\x1f, and
# Unicode space/line/paragraph separators except the no-break spaces.
_JAVA_WS = " \t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\u1680\u2000-\u2006\u2008-\u200a\u2028\u2029\u205f\u3000"
_WS_RE = re.compile(rf"(?:[{_JAVA_WS}]+|#[^\n]*\n?)*")

# The fast path's subset of the grammar: no escapes and no comments, and only
# ASCII whitespace.  Text it accepts parses exactly as the scanner parses it;
# anything else (errors included) goes to the scanner.
FAST_WS_CHARS = " \t\n\r"
FAST_WS = f"[{FAST_WS_CHARS}]*"
FAST_PATH = rf"/(?:[{_SHOWABLE_CLASS}]+(?:/[{_SHOWABLE_CLASS}]+)*)?"
_FAST_PATH_RE = re.compile(rf"{FAST_WS}({FAST_PATH}){FAST_WS}")


class ParseError(ValueError):
    """
    Text that is not a valid path, name tree, dentry or dtab.  The message
    names what was expected, what was found and where, e.g.
    C{'/' expected but end of input found at '[]'}.
    """


def _unescape(text: str) -> bytes:
    if "\\" not in text:
        return text.encode("ascii")
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text).encode("latin-1")


def showElem(elem: bytes) -> str:
    """
    One path element as written in a path: literally if every byte is
    showable, otherwise every byte as C{\\xhh}.
    """
    if not elem.translate(None, _SHOWABLE_BYTES):
        return elem.decode("ascii")
    return "".join([f"\\x{b:02x}" for b in elem])


class Scanner:
    """
    A recursive-descent scanner over one string, with Finagle's error
    messages.  Subclasses add the grammar of name trees and dtabs.
    """

    __slots__ = ("i", "n", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.i = 0
        self.n = len(s)

    def fail(self, expected: str, found: str | None = None) -> NoReturn:
        if found is None:
            found = f"'{self.s[self.i]}'" if self.i < self.n else "end of input"
        self.error(f"{expected} expected but {found} found")

    def error(self, message: str) -> NoReturn:
        """Raise L{ParseError}: C{message} and the input, marked at the position."""
        s, i = self.s, self.i
        shown = s + "[]" if i >= self.n else f"{s[:i]}[{s[i]}]{s[i + 1 :]}"
        raise ParseError(f"{message} at '{shown}'")

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else ""

    def ws(self) -> None:
        m = _WS_RE.match(self.s, self.i)
        assert m is not None
        self.i = m.end()

    def eat(self, char: str) -> None:
        if self.i < self.n and self.s[self.i] == char:
            self.i += 1
        else:
            self.fail(f"'{char}'")

    def end(self) -> None:
        self.ws()
        if self.i < self.n:
            self.fail("end of input")

    def badLabel(self) -> NoReturn:
        """
        Raise the error for the label text at the current position, which
        is not a complete label.
        """
        s = self.s
        while self.i < self.n and s[self.i] in _LABEL_START:
            if s[self.i] == "\\":
                self.i += 1
                self.eat("x")
                for _ in range(2):
                    if self.peek() not in _HEX:
                        self.fail("hex char")
                    self.i += 1
            else:
                self.i += 1
        self.fail("label char")

    def label(self) -> bytes:
        m = _LABEL_RE.match(self.s, self.i)
        if m is None or (m.end() < self.n and self.s[m.end()] == "\\"):
            if m is not None:
                self.i = m.end()
            self.badLabel()
        self.i = m.end()
        return _unescape(m.group())

    def path(self) -> Path:
        """C{WS '/' [label ('/' label)*]}"""
        self.ws()
        s, n = self.s, self.n
        m = _PATH_RE.match(s, self.i)
        if m is None:
            self.fail("'/'")
        j = m.end()
        if j < n and (s[j] == "\\" or (s[j] == "/" and j - self.i > 1)):
            # Stopped inside a label, or at a '/' that commits to a label.
            self.i = j + 1 if s[j] == "/" else j
            self.badLabel()
        text = m.group()
        self.i = j
        if "\\" in text:
            return Path._make(tuple([_unescape(p) for p in text[1:].split("/")]))
        return fastPath(text)


_set = object.__setattr__


class Path:
    """
    An immutable, hashable, ordered sequence of non-empty byte strings.

    C{Path(b"svc", b"users")} shows as C{/svc/users}; L{Path.read} parses
    that text; L{Path.of} builds a path from text elements.
    """

    __slots__ = ("_show", "elems")
    elems: tuple[bytes, ...]
    _show: str  # set when first shown

    def __init__(self, *elems: bytes) -> None:
        for e in elems:
            if type(e) is not bytes or not e:
                raise ValueError(f"path elements must be non-empty bytes: {e!r}")
        _set(self, "elems", elems)

    @staticmethod
    def _make(elems: tuple[bytes, ...]) -> Path:
        """A path of C{elems}, which the caller has checked."""
        p = _new(Path)
        _setElems(p, elems)
        return p

    @staticmethod
    def of(*elems: str) -> Path:
        """A path of UTF-8 encoded text elements: C{Path.of("svc", "a")}."""
        return Path(*[e.encode("utf-8") for e in elems])

    @staticmethod
    def read(text: str) -> Path:
        """
        Parse C{text} (C{/a/b}, C{/}, with C{\\xNN} escapes).

        @raise ParseError: if C{text} is not a path.
        """
        return _readPath(text)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Path is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Path is immutable")

    @property
    def show(self) -> str:
        try:
            return self._show
        except AttributeError:
            shown = "/" + "/".join([showElem(e) for e in self.elems])
            _set(self, "_show", shown)
            return shown

    def __repr__(self) -> str:
        return f"Path.read({self.show!r})"

    def __str__(self) -> str:
        return self.show

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is Path and self.elems == other.elems)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.elems)

    def __lt__(self, other: Path) -> bool:
        return self.elems < other.elems

    def __le__(self, other: Path) -> bool:
        return self.elems <= other.elems

    def __gt__(self, other: Path) -> bool:
        return self.elems > other.elems

    def __ge__(self, other: Path) -> bool:
        return self.elems >= other.elems

    def __len__(self) -> int:
        return len(self.elems)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.elems)

    def __add__(self, other: Path) -> Path:
        if not other.elems:
            return self
        if not self.elems:
            return other
        return Path._make(self.elems + other.elems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path, self.elems)

    def startswith(self, prefix: Path) -> bool:
        n = len(prefix.elems)
        return self.elems[:n] == prefix.elems

    def take(self, n: int) -> Path:
        return self if n >= len(self.elems) else Path._make(self.elems[: max(n, 0)])

    def drop(self, n: int) -> Path:
        return self if n <= 0 else Path._make(self.elems[n:])


_new = object.__new__
_setElems = Path.__dict__["elems"].__set__
EMPTY_PATH = Path()


def fastPath(text: str) -> Path:
    """The path C{text}, a match of C{FAST_PATH}."""
    if len(text) == 1:
        return EMPTY_PATH
    return Path._make(tuple(text[1:].encode("ascii").split(b"/")))


@lru_cache(maxsize=4096)
def _readPath(text: str) -> Path:
    m = _FAST_PATH_RE.fullmatch(text)
    if m is not None:
        return fastPath(m.group(1))
    scanner = Scanner(text)
    path = scanner.path()
    scanner.end()
    return path
