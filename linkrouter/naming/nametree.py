# -*- test-case-name: tests.test_naming_nametree -*-
"""
Name trees: L{Leaf}, L{Alt} (fail-over, C{|}), L{Union} of L{Weighted}
trees (C{&}, C{0.5 * /a}), and the singletons L{NEG} (C{~}), L{FAIL}
(C{!}) and L{EMPTY} (C{$}).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, Generic, NoReturn, TypeVar

from .path import FAST_PATH, FAST_WS, FAST_WS_CHARS, Path, Scanner, fastPath

T = TypeVar("T")
U = TypeVar("U")

_set = object.__setattr__


class NameTree(Generic[T]):
    """
    Base of every name tree node.  Nodes are immutable and hashable.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("name trees are immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("name trees are immutable")

    @staticmethod
    def read(text: str) -> NameTree[Path]:
        """
        Parse a name tree such as C{/a | 0.5 * /b & /c}.

        @raise ParseError: with the position and what was expected.
        """
        return _readTree(text)

    @property
    def show(self) -> str:
        """The canonical text of this tree, readable by L{NameTree.read}."""
        return _show(self)

    def __str__(self) -> str:
        return _show(self)

    @property
    def simplified(self) -> NameTree[T]:
        """An evaluation-equivalent tree, normalised (a fixpoint)."""
        return _simplify(self)

    def map(self, f: Callable[[T], U]) -> NameTree[U]:
        """The same tree with each leaf value C{v} replaced by C{f(v)}."""
        return _map(self, f)

    def eval(self) -> frozenset[T] | None:
        """
        The set of leaf values this tree selects (weights ignored), or
        C{None} if it is negative or failed.
        """
        result = _eval(self)
        return result if isinstance(result, frozenset) else None


class Leaf(NameTree[T]):
    __slots__ = ("value",)
    value: T

    def __init__(self, value: T) -> None:
        _set(self, "value", value)

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is Leaf and self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Leaf({self.value!r})"


class Alt(NameTree[T]):
    """Fail-over: the first child that is not negative."""

    __slots__ = ("trees",)
    trees: tuple[NameTree[T], ...]

    def __init__(self, *trees: NameTree[T]) -> None:
        _set(self, "trees", trees)

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is Alt and self.trees == other.trees)

    def __hash__(self) -> int:
        return hash(("alt", self.trees))

    def __repr__(self) -> str:
        return f"Alt({', '.join(map(repr, self.trees))})"


class Weighted(Generic[T]):
    """One weighted child of a L{Union}."""

    __slots__ = ("tree", "weight")
    weight: float
    tree: NameTree[T]

    def __init__(self, weight: float, tree: NameTree[T]) -> None:
        _set(self, "weight", weight)
        _set(self, "tree", tree)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("name trees are immutable")

    def __eq__(self, other: object) -> bool:
        return type(other) is Weighted and self.weight == other.weight and self.tree == other.tree

    def __hash__(self) -> int:
        return hash((self.weight, self.tree))

    def __repr__(self) -> str:
        return f"Weighted({self.weight!r}, {self.tree!r})"


DEFAULT_WEIGHT: Final = 1.0


class Union(NameTree[T]):
    """Weighted union (load balancing) of its children."""

    __slots__ = ("trees",)
    trees: tuple[Weighted[T], ...]

    def __init__(self, *trees: Weighted[T]) -> None:
        _set(self, "trees", trees)

    def __eq__(self, other: object) -> bool:
        return self is other or (type(other) is Union and self.trees == other.trees)

    def __hash__(self) -> int:
        return hash(("union", self.trees))

    def __repr__(self) -> str:
        return f"Union({', '.join(map(repr, self.trees))})"


class _Special(NameTree[Any]):
    __slots__ = ("_name", "_show")
    _name: str
    _show: str

    def __init__(self, name: str, shown: str) -> None:
        _set(self, "_name", name)
        _set(self, "_show", shown)

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


NEG: Final[NameTree[Any]] = _Special("NEG", "~")
"""Negative: no such name.  L{Alt} falls through it."""
FAIL: Final[NameTree[Any]] = _Special("FAIL", "!")
"""Failure: stops fall-back in L{Alt}."""
EMPTY: Final[NameTree[Any]] = _Special("EMPTY", "$")
"""Exists but has no addresses; also stops fall-back in L{Alt}."""


# --------------------------------------------------------------------------
# show


_DECIMAL_CONTEXT = decimal.Context(prec=1000, rounding=decimal.ROUND_HALF_UP)
_CENT = decimal.Decimal("0.01")


@lru_cache(maxsize=256)
def formatWeight(weight: float) -> str:
    """
    C{weight} as Java's C{String.format("%.2f")} writes it: HALF_UP rounding
    of the shortest decimal representation.
    """
    if math.isnan(weight):
        return "NaN"
    if math.isinf(weight):
        return "Infinity" if weight > 0 else "-Infinity"
    d = decimal.Decimal(repr(weight)).quantize(_CENT, context=_DECIMAL_CONTEXT)
    return format(d, "f")


def _unwrap(tree: NameTree[Any]) -> NameTree[Any]:
    while True:
        cls = type(tree)
        if cls is Alt and len(tree.trees) == 1:  # type: ignore[attr-defined]
            tree = tree.trees[0]  # type: ignore[attr-defined]
        elif cls is Union and len(tree.trees) == 1:  # type: ignore[attr-defined]
            tree = tree.trees[0].tree  # type: ignore[attr-defined]
        else:
            return tree


def _show(tree: NameTree[Any]) -> str:
    tree = _unwrap(tree)
    if type(tree) is Alt and tree.trees:
        return " | ".join([_showOperand(t) for t in tree.trees])
    return _showOperand(tree)


def _showOperand(tree: NameTree[Any]) -> str:
    tree = _unwrap(tree)
    if type(tree) is Union and tree.trees:
        return " & ".join(
            [
                _showSimple(w.tree)
                if w.weight == DEFAULT_WEIGHT
                else formatWeight(w.weight) + "*" + _showSimple(w.tree)
                for w in tree.trees
            ]
        )
    return _showSimple(tree)


def _showSimple(tree: NameTree[Any]) -> str:
    tree = _unwrap(tree)
    cls = type(tree)
    if cls is Leaf:
        value = tree.value  # type: ignore[attr-defined]
        shown = getattr(value, "show", None)
        return shown if isinstance(shown, str) else str(value)
    if cls is Alt or cls is Union:
        # An empty Alt or Union evaluates like Neg and is written as such.
        return "(" + _show(tree) + ")" if tree.trees else "~"  # type: ignore[attr-defined]
    return tree._show  # type: ignore[attr-defined, no-any-return]


# --------------------------------------------------------------------------
# simplify, map, eval


def _simplify(tree: NameTree[T]) -> NameTree[T]:
    if type(tree) is Alt:
        trees = tree.trees
        if len(trees) == 1:
            return _simplify(trees[0])
        kept: list[NameTree[T]] = []
        for t in trees:
            s = _simplify(t)
            if s is NEG:
                continue
            kept.append(s)
            if s is FAIL:
                break
        if not kept:
            return NEG
        return kept[0] if len(kept) == 1 else Alt(*kept)
    if type(tree) is Union:
        wtrees = tree.trees
        if len(wtrees) == 1:
            return _simplify(wtrees[0].tree)
        wkept: list[Weighted[T]] = []
        for w in wtrees:
            s = _simplify(w.tree)
            if s is NEG or s is FAIL:
                continue
            wkept.append(w if s is w.tree else Weighted(w.weight, s))
        if not wkept:
            return NEG
        return wkept[0].tree if len(wkept) == 1 else Union(*wkept)
    return tree


def _map(tree: NameTree[T], f: Callable[[T], U]) -> NameTree[U]:
    cls = type(tree)
    if cls is Leaf:
        return Leaf(f(tree.value))  # type: ignore[attr-defined]
    if cls is Alt:
        return Alt(*[_map(t, f) for t in tree.trees])  # type: ignore[attr-defined]
    if cls is Union:
        return Union(*[Weighted(w.weight, _map(w.tree, f)) for w in tree.trees])  # type: ignore[attr-defined]
    return tree  # type: ignore[return-value]


def _eval(tree: NameTree[T]) -> frozenset[T] | NameTree[Any]:
    """A frozenset, or L{NEG} or L{FAIL}."""
    cls = type(tree)
    if cls is Leaf:
        return frozenset((tree.value,))  # type: ignore[attr-defined]
    if tree is EMPTY:
        return frozenset()
    if cls is Alt:
        for t in tree.trees:  # type: ignore[attr-defined]
            r = _eval(t)
            if r is not NEG:
                return r
        return NEG
    if cls is Union:
        if len(tree.trees) == 1:  # type: ignore[attr-defined]
            # As Finagle: a lone child decides, a failure included.
            return _eval(tree.trees[0].tree)  # type: ignore[attr-defined]
        sets = [r for w in tree.trees if isinstance(r := _eval(w.tree), frozenset)]  # type: ignore[attr-defined]
        return frozenset().union(*sets) if sets else NEG
    return tree


# --------------------------------------------------------------------------
# read

_NUMBER_RE = re.compile(r"[0-9.]+")


MAX_NESTING: Final = 100
"""The most parentheses a name tree may nest (Finagle has no limit)."""


class TreeScanner(Scanner):
    """The name tree grammar (Finagle's C{NameTreeParsers})."""

    __slots__ = ("depth",)

    def __init__(self, s: str) -> None:
        super().__init__(s)
        self.depth = 0

    def tree(self) -> NameTree[Path]:
        first = self.tree1()
        self.ws()
        if self.peek() != "|":
            return first
        trees = [first]
        while self.peek() == "|":
            self.i += 1
            trees.append(self.tree1())
            self.ws()
        return Alt(*trees)

    def tree1(self) -> NameTree[Path]:
        first = self.weighted()
        self.ws()
        if self.peek() != "&":
            return first.tree
        trees = [first]
        while self.peek() == "&":
            self.i += 1
            trees.append(self.weighted())
            self.ws()
        return Union(*trees)

    def weighted(self) -> Weighted[Path]:
        self.ws()
        c = self.peek()
        if c and (c in "0123456789."):
            weight = self.number()
            self.ws()
            self.eat("*")
            self.ws()
            return Weighted(weight, self.simple())
        return Weighted(DEFAULT_WEIGHT, self.simple())

    def number(self) -> float:
        m = _NUMBER_RE.match(self.s, self.i)
        assert m is not None
        text = m.group()
        second = text.find(".", text.find(".") + 1)
        if second >= 0:
            self.i += second
            self.fail("number char")
        self.i = m.end()
        if text == ".":
            self.fail("weight", "'.'")
        return float(text)

    def simple(self) -> NameTree[Path]:
        self.ws()
        c = self.peek()
        if c == "/":
            return Leaf(self.path())
        if c == "(":
            if self.depth >= MAX_NESTING:
                self.error(f"more than {MAX_NESTING} nested parentheses")
            self.depth += 1
            self.i += 1
            tree = self.tree()
            self.depth -= 1
            self.ws()
            self.eat(")")
            return tree
        if c == "!":
            self.i += 1
            return FAIL
        if c == "~":
            self.i += 1
            return NEG
        if c == "$":
            self.i += 1
            return EMPTY
        self.fail("simple")


_FAST_WEIGHTED = rf"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+){FAST_WS}\*{FAST_WS})?(?:{FAST_PATH}|[~!$])"
FAST_TREE = rf"{FAST_WS}{_FAST_WEIGHTED}(?:{FAST_WS}[|&]{FAST_WS}{_FAST_WEIGHTED})*{FAST_WS}"
"""
The name trees without parentheses, escapes or comments, the common case
that L{fastTree} builds without the scanner.
"""
_FAST_TREE_RE = re.compile(FAST_TREE)
_FAST_SPECIALS: Final[dict[str, NameTree[Any]]] = {"~": NEG, "!": FAIL, "$": EMPTY}


def fastTree(text: str) -> NameTree[Path]:
    """The tree C{text}, a match of L{FAST_TREE}, as L{TreeScanner} reads it."""
    alts: list[NameTree[Path]] = []
    for alt in text.split("|"):
        if "&" in alt:
            alts.append(Union(*[_fastWeighted(p) for p in alt.split("&")]))
        else:
            # A lone weight is dropped, as the scanner drops it.
            alts.append(_fastSimple(alt.rpartition("*")[2]))
    return alts[0] if len(alts) == 1 else Alt(*alts)


def _fastWeighted(text: str) -> Weighted[Path]:
    weight, star, simple = text.rpartition("*")
    return Weighted(float(weight) if star else DEFAULT_WEIGHT, _fastSimple(simple))


def _fastSimple(text: str) -> NameTree[Path]:
    text = text.strip(FAST_WS_CHARS)
    special = _FAST_SPECIALS.get(text)
    return special if special is not None else Leaf(fastPath(text))


@lru_cache(maxsize=4096)
def _readTree(text: str) -> NameTree[Path]:
    if _FAST_TREE_RE.fullmatch(text) is not None:
        return fastTree(text)
    scanner = TreeScanner(text)
    tree = scanner.tree()
    scanner.end()
    return tree
