"""Hypothesis strategies for naming values (shared by tests/test_naming_*)."""

from __future__ import annotations

from hypothesis import strategies as st

from linkrouter.naming import (
    EMPTY,
    FAIL,
    NEG,
    Alt,
    Dentry,
    Dtab,
    Leaf,
    NameTree,
    Path,
    Union,
    Weighted,
)
from linkrouter.naming.dtab import ANY_ELEM, Prefix

elems = st.one_of(
    st.text("abcxyz09_:.#$%-", min_size=1, max_size=5).map(str.encode),
    st.binary(min_size=1, max_size=4),
)
paths = st.lists(elems, max_size=4).map(lambda es: Path(*es))
weights = st.integers(0, 1000).map(lambda n: n / 100)


def _extend(children: st.SearchStrategy[NameTree[Path]]) -> st.SearchStrategy[NameTree[Path]]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda ts: Alt(*ts)),
        st.lists(st.builds(Weighted, weights, children), min_size=2, max_size=3).map(
            lambda ws: Union(*ws)
        ),
    )


trees = st.recursive(
    st.one_of(paths.map(Leaf), st.sampled_from([NEG, FAIL, EMPTY])), _extend, max_leaves=8
)
"""Trees as the parser produces them (no 0- or 1-child Alt/Union)."""

anyTrees = st.recursive(
    st.one_of(paths.map(Leaf), st.sampled_from([NEG, FAIL, EMPTY])),
    lambda c: st.one_of(
        st.lists(c, max_size=3).map(lambda ts: Alt(*ts)),
        st.lists(st.builds(Weighted, weights, c), max_size=3).map(lambda ws: Union(*ws)),
    ),
    max_leaves=8,
)
"""Any trees, including empty and single-child Alt/Union."""

prefixes = st.lists(st.one_of(elems, st.just(ANY_ELEM)), max_size=3).map(lambda es: Prefix(*es))
dtabs = st.lists(st.builds(Dentry, prefixes, trees), max_size=4).map(Dtab)

_TOKENS = [
    "/", "/", "/", "a", "b0", "#", "$", "%", "*", "=>", "=>", "=", ">", "|", "&", ";",
    "~", "!", " ", " ", "\t", "\n", "\r", "\x0b", "\u3000", "0", "0.5", "1.", ".", "2*",
    "(", ")", "\\x41", "\\", "\\x4", "# c\n", "é",
]  # fmt: skip
grammarTexts = st.lists(st.sampled_from(_TOKENS), max_size=16).map("".join)
"""Text made of the grammar's tokens, mostly invalid, some valid."""


def _spaced(text: str, spaces: list[tuple[int, str]]) -> str:
    for i, space in sorted(spaces, reverse=True):
        i %= len(text) + 1
        text = text[:i] + space + text[i:]
    return text


def spacedShows(
    values: st.SearchStrategy[Dtab] | st.SearchStrategy[NameTree[Path]],
) -> st.SearchStrategy[str]:
    """Values' canonical text with whitespace (or a comment) inserted anywhere."""
    return st.builds(
        _spaced,
        values.map(lambda v: v.show),
        st.lists(
            st.tuples(st.integers(0, 200), st.sampled_from([" ", "\t", "\n ", "#c\n"])), max_size=3
        ),
    )
