# -*- test-case-name: tests.test_naming_dtab -*-
"""
Delegation tables: L{Prefix} (a path pattern where C{*} matches one
element), L{Dentry} (C{prefix => tree}) and L{Dtab} (a sequence of dentries,
later ones taking precedence).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, Final, NoReturn

from .nametree import NEG, Alt, Leaf, NameTree, TreeScanner
from .path import _LABEL_START, Path, showElem

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
        suffix = path.drop(len(self.prefix.elems))
        dst = self.dst
        if not suffix.elems:
            return dst
        if type(dst) is Leaf:
            return Leaf(dst.value + suffix)
        return dst.map(lambda p: p + suffix)


NOP: Final = Dentry(Prefix(b"/"), NEG)
"""Linkerd's "no dentry" (C{/\\x2f=>~}); it cannot be written in a dtab."""

_MAX_CHAIN = 4

_Index = tuple[
    dict[tuple[PrefixElem, ...], tuple[tuple[int, Dentry], ...]], tuple[tuple[int, Dentry], ...]
]
"""Entries without wildcards by prefix, and entries with wildcards, with positions."""


def _position(match: tuple[int, Dentry]) -> int:
    return match[0]


class Dtab:
    """
    An immutable sequence of L{Dentry}.  C{lookup} tries later entries
    first; C{base + local} puts C{local}'s entries last, so they win.
    """

    __slots__ = ("_chain", "_index", "_parts", "entries")
    entries: tuple[Dentry, ...]
    _parts: tuple[Dtab, Dtab] | None
    _chain: int
    _index: _Index | None

    def __init__(self, entries: Iterable[Dentry] = ()) -> None:
        _set(self, "entries", tuple(entries))
        _set(self, "_parts", None)
        _set(self, "_chain", 0)
        _set(self, "_index", None)

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
        return hash(self.entries)

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
        result = Dtab(self.entries + other.entries)
        chain = max(self._chain, other._chain) + 1
        if chain <= _MAX_CHAIN:
            # Look up through both parts' indexes instead of building one.
            _set(result, "_parts", (self, other))
            _set(result, "_chain", chain)
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
        parts = self._parts
        if parts is not None:
            return parts[1].matching(path) + parts[0].matching(path)
        index = self._index
        if index is None:
            index = self._buildIndex()
        exact, wild = index
        elems = path.elems
        found = [m for k in range(len(elems) + 1) for m in exact.get(elems[:k], ())]
        found.extend(m for m in wild if m[1].prefix.matches(path))
        if len(found) > 1:
            found.sort(reverse=True, key=_position)
        return [m[1] for m in found]

    def _buildIndex(self) -> _Index:
        exact: dict[tuple[PrefixElem, ...], list[tuple[int, Dentry]]] = {}
        wild: list[tuple[int, Dentry]] = []
        for i, d in enumerate(self.entries):
            if d.prefix.wild:
                wild.append((i, d))
            else:
                exact.setdefault(d.prefix.elems, []).append((i, d))
        index: _Index = ({k: tuple(v) for k, v in exact.items()}, tuple(wild))
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


@lru_cache(maxsize=1024)
def _readDtab(text: str) -> Dtab:
    scanner = DtabScanner(text)
    dtab = scanner.dtab()
    scanner.end()
    return dtab
