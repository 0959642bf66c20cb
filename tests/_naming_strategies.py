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
