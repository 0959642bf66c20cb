# -*- test-case-name: tests.test_naming_dtab -*-
"""
Delegation tables: L{Prefix} (a path pattern where C{*} matches one
element), L{Dentry} (C{prefix => tree}) and L{Dtab} (a sequence of dentries,
later ones taking precedence).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, Final, NoReturn

from .nametree import FAST_TREE, NEG, Alt, Leaf, NameTree, TreeScanner, fastTree
from .path import _LABEL_START, _SHOWABLE_CLASS, FAST_WS, FAST_WS_CHARS, Path, showElem

_set = object.__setattr__


class _AnyElem:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY_ELEM"

    def __reduce__(self) -> str:
        return "ANY_ELEM"


ANY_ELEM: Final = _AnyElem()
"""The C{*} prefix element: matches any one path element."""

PrefixElem = bytes | _AnyElem


class Prefix:
    """A dentry prefix: path elements and C{*} wildcards."""

    __slots__ = ("elems", "wild")
    elems: tuple[PrefixElem, ...]
    wild: bool

    def __init__(self, *elems: PrefixElem) -> None:
        for e in elems:
            if e is not ANY_ELEM and (type(e) is not bytes or not e):
                raise ValueError(f"prefix elements must be non-empty bytes or ANY_ELEM: {e!r}")
        _set(self, "elems", elems)
        _set(self, "wild", ANY_ELEM in elems)

    @staticmethod
    def _make(elems: tuple[PrefixElem, ...], wild: bool) -> Prefix:
        """A prefix of C{elems}, which the caller has checked."""
        prefix = object.__new__(Prefix)
        _set(prefix, "elems", elems)
        _set(prefix, "wild", wild)
        return prefix

    @staticmethod
    def of(path: Path) -> Prefix:
        return Prefix(*path.elems)

    @staticmethod
    def read(text: str) -> Prefix:
        scanner = DtabScanner(text)
        prefix = scanner.prefix()
        scanner.end()
        return prefix

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Prefix is immutable")

    @property
    def show(self) -> str:
        return "/" + "/".join(["*" if e is ANY_ELEM else showElem(e) for e in self.elems])  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Prefix.read({self.show!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Prefix and self.elems == other.elems

    def __hash__(self) -> int:
        return hash(self.elems)

    def __len__(self) -> int:
        return len(self.elems)

    def matches(self, path: Path) -> bool:
        """Whether C{path} starts with this prefix (C{*} matching any element)."""
        elems = self.elems
        n = len(elems)
        pelems = path.elems
        if not self.wild:
            return pelems[:n] == elems
        if len(pelems) < n:
            return False
        for i in range(n):
            e = elems[i]
            if e is not ANY_ELEM and e != pelems[i]:
                return False
        return True


class Dentry:
    """One delegation rule, C{prefix => dst}."""

    __slots__ = ("dst", "prefix")
    prefix: Prefix
    dst: NameTree[Path]

    def __init__(self, prefix: Prefix | Path, dst: NameTree[Path]) -> None:
        _set(self, "prefix", prefix if type(prefix) is Prefix else Prefix(*prefix.elems))
        _set(self, "dst", dst)

    @staticmethod
    def read(text: str) -> Dentry:
        scanner = DtabScanner(text)
        dentry = scanner.dentry()
        scanner.end()
        return dentry

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Dentry is immutable")

    @property
    def show(self) -> str:
        return self.prefix.show + "=>" + self.dst.show

    def __repr__(self) -> str:
        return f"Dentry.read({self.show!r})"

    def __eq__(self, other: object) -> bool:
        return self is other or (
            type(other) is Dentry and self.prefix == other.prefix and self.dst == other.dst
        )

    def __hash__(self) -> int:
        return hash((self.prefix, self.dst))

    def rewrite(self, path: Path) -> NameTree[Path]:
        """
        This entry's destination with the part of C{path} after the prefix
        appended to every leaf (C{path} must match the prefix).
        """
        rest = path.elems[len(self.prefix.elems) :]
        dst = self.dst
        if not rest:
            return dst
        if type(dst) is Leaf:
            return Leaf(Path._make(dst.value.elems + rest))
        suffix = Path._make(rest)
        return dst.map(lambda p: p + suffix)


NOP: Final = Dentry(Prefix(b"/"), NEG)
"""Linkerd's "no dentry" (C{/\\x2f=>~}); it cannot be written in a dtab."""

_MAX_PARTS = 8
"""A concatenation of more dtabs than this indexes its entries itself."""
_SCAN_MAX = 4
"""Dtabs this small are scanned rather than indexed."""


class _Node:
    """A node of a dtab's prefix trie: the entries whose prefix ends here."""

    __slots__ = ("children", "entries")

    def __init__(self) -> None:
        self.children: dict[PrefixElem, _Node] = {}
        self.entries: list[tuple[int, Dentry]] = []


_Index = tuple[_Node, bool]
"""The prefix trie of a dtab's entries (with their positions), and whether any has a C{*}."""


def _position(match: tuple[int, Dentry]) -> int:
    return match[0]


class Dtab:
    """
    An immutable sequence of L{Dentry}.  C{lookup} tries later entries
    first; C{base + local} puts C{local}'s entries last, so they win.
    """

    __slots__ = ("_hash", "_index", "_parts", "entries")
    entries: tuple[Dentry, ...]
    _parts: tuple[Dtab, ...] | None
    _index: _Index | None
    _hash: int | None

    def __init__(self, entries: Iterable[Dentry] = ()) -> None:
        _set(self, "entries", tuple(entries))
        _set(self, "_parts", None)
        _set(self, "_index", None)
        _set(self, "_hash", None)

    @staticmethod
    def empty() -> Dtab:
        return EMPTY_DTAB

    @staticmethod
    def read(text: str) -> Dtab:
        """
        Parse C{;}-separated dentries, e.g. C{/svc=>/#/io.l5d.fs;/a=>/b}.

        @raise ParseError: with the position and what was expected.
        """
        return _readDtab(text)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Dtab is immutable")

    @property
    def show(self) -> str:
        return ";".join([d.show for d in self.entries])

    def __str__(self) -> str:
        return self.show

    def __repr__(self) -> str:
        return f"Dtab.read({self.show!r})"

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is Dtab and self.entries == other.entries)

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = hash(self.entries)
            _set(self, "_hash", h)
        return h

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[Dentry]:
        return iter(self.entries)

    def __add__(self, other: Dtab | Dentry) -> Dtab:
        if type(other) is Dentry:
            other = Dtab((other,))
        assert isinstance(other, Dtab)
        if not other.entries:
            return self
        if not self.entries:
            return other
        result = object.__new__(Dtab)
        _set(result, "entries", self.entries + other.entries)
        _set(result, "_index", None)
        _set(result, "_hash", None)
        # Look up through the parts' indexes, last part first, instead of
        # building one (a base dtab plus a request's local dtab, typically).
        parts = (other._parts or (other,)) + (self._parts or (self,))
        _set(result, "_parts", parts if len(parts) <= _MAX_PARTS else None)
        return result

    def stripPrefix(self, prefix: Dtab) -> Dtab:
        """This dtab without C{prefix}'s entries if they lead it, else itself."""
        n = len(prefix.entries)
        if n and self.entries[:n] == prefix.entries:
            return Dtab(self.entries[n:])
        return self

    @property
    def simplified(self) -> Dtab:
        """Destinations simplified; entries whose destination became C{~} dropped."""
        entries = [Dentry(d.prefix, d.dst.simplified) for d in self.entries]
        return Dtab([d for d in entries if d.dst is not NEG])

    def matching(self, path: Path) -> list[Dentry]:
        """The entries whose prefix matches C{path}, last entry first."""
        found: list[Dentry] = []
        for part in self._parts or (self,):
            entries = part.entries
            if len(entries) <= _SCAN_MAX:
                for d in reversed(entries):
                    if d.prefix.matches(path):
                        found.append(d)
            else:
                found += part._indexed(path.elems)
        return found

    def _indexed(self, elems: tuple[bytes, ...]) -> list[Dentry]:
        root, wild = self._index or self._buildIndex()
        found = list(root.entries)
        if not wild:
            node: _Node | None = root
            for e in elems:
                node = node.children.get(e)  # type: ignore[union-attr]
                if node is None:
                    break
                found += node.entries
        else:
            n = len(elems)
            stack = [(root, 0)]
            while stack:
                parent, i = stack.pop()
                if i < n:
                    for key in (elems[i], ANY_ELEM):
                        child = parent.children.get(key)
                        if child is not None:
                            found += child.entries
                            stack.append((child, i + 1))
        if len(found) <= 1:
            return [found[0][1]] if found else []
        found.sort(reverse=True, key=_position)
        return [m[1] for m in found]

    def _buildIndex(self) -> _Index:
        root = _Node()
        for i, d in enumerate(self.entries):
            node = root
            for e in d.prefix.elems:
                child = node.children.get(e)
                if child is None:
                    child = node.children[e] = _Node()
                node = child
            node.entries.append((i, d))
        index = (root, any(d.prefix.wild for d in self.entries))
        _set(self, "_index", index)
        return index

    def lookup(self, path: Path) -> NameTree[Path]:
        """
        One rewriting step: L{NEG} if no entry matches, the rewritten
        destination if one does, and an L{Alt} of them (last entry first)
        if several do.  The result is not simplified.
        """
        matches = self.matching(path)
        if not matches:
            return NEG
        if len(matches) == 1:
            return matches[0].rewrite(path)
        return Alt(*[d.rewrite(path) for d in matches])


EMPTY_DTAB: Final = Dtab()


class DtabScanner(TreeScanner):
    """The dentry and dtab grammar."""

    __slots__ = ()

    def prefix(self) -> Prefix:
        self.ws()
        self.eat("/")
        c = self.peek()
        if not c or (c not in _LABEL_START and c != "*"):
            return Prefix()
        elems: list[PrefixElem] = [self.prefixElem()]
        while self.peek() == "/":
            self.i += 1
            elems.append(self.prefixElem())
        return Prefix(*elems)

    def prefixElem(self) -> PrefixElem:
        if self.peek() == "*":
            self.i += 1
            return ANY_ELEM
        return self.label()

    def dentry(self) -> Dentry:
        prefix = self.prefix()
        self.ws()
        self.eat("=")
        self.eat(">")
        return Dentry(prefix, self.tree())

    def dtab(self) -> Dtab:
        entries = []
        while True:
            self.ws()
            if self.i < self.n:
                entries.append(self.dentry())
                self.ws()
            if self.peek() != ";":
                break
            self.i += 1
        return Dtab(entries)


_FAST_PREFIX_ELEM = rf"(?:\*|[{_SHOWABLE_CLASS}]+)"
_FAST_DENTRY = rf"{FAST_WS}/(?:{_FAST_PREFIX_ELEM}(?:/{_FAST_PREFIX_ELEM})*)?{FAST_WS}=>{FAST_TREE}"
_FAST_DTAB_RE = re.compile(rf"(?:{_FAST_DENTRY}(?:;{_FAST_DENTRY})*;?)?{FAST_WS}")
"""Dtabs whose prefixes and trees are in the fast subset of the grammar."""


def _fastPrefix(text: str) -> Prefix:
    text = text.strip(FAST_WS_CHARS)
    if len(text) == 1:
        return _EMPTY_PREFIX
    elems = text[1:].encode("ascii").split(b"/")
    if "*" in text:
        return Prefix._make(tuple([ANY_ELEM if e == b"*" else e for e in elems]), True)
    return Prefix._make(tuple(elems), False)


_EMPTY_PREFIX: Final = Prefix()


def parseDtab(text: str) -> Dtab:
    """
    L{Dtab.read} without its cache: the common syntax is split with
    C{str} methods once a regular expression has checked all of it, the
    rest goes through L{DtabScanner}.
    """
    if _FAST_DTAB_RE.fullmatch(text) is not None:
        entries = []
        for entry in text.split(";"):
            prefix, arrow, tree = entry.partition("=>")
            if arrow:
                entries.append(Dentry(_fastPrefix(prefix), fastTree(tree)))
        return Dtab(entries)
    scanner = DtabScanner(text)
    dtab = scanner.dtab()
    scanner.end()
    return dtab


_readDtab = lru_cache(maxsize=1024)(parseDtab)
