# -*- test-case-name: tests.test_naming_delegate -*-
"""
Delegation explanations: the tree Linkerd's C{/delegator.json} shows for a
dtab and a path (every step, the dentry that produced it, down to bound
names with their addresses), and its JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
from twisted.internet.defer import Deferred

from .addr import ADDR_NEG, ADDR_PENDING, Addr, AddrBound, AddrFailed, Bound
from .dtab import NOP, Dentry, Dtab
from .nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union
from .path import EMPTY_PATH, ParseError, Path
from .var import Failed, Ok, Pending, Var

if TYPE_CHECKING:
    from .interpreter import ConfiguredNamersInterpreter

MAX_DEPTH = 100


@attrs.frozen
class DelegateTree:
    """A node of a delegation explanation: C{path} was produced by C{dentry}."""

    path: Path
    dentry: Dentry


@attrs.frozen
class DelegateDelegate(DelegateTree):
    """Exactly one dtab entry matched C{path}."""

    tree: DelegateTree


@attrs.frozen
class DelegateAlt(DelegateTree):
    """Several entries matched C{path}, or a destination contained C{|}."""

    trees: tuple[DelegateTree, ...]


@attrs.frozen
class DelegateWeighted:
    weight: float
    tree: DelegateTree


@attrs.frozen
class DelegateUnion(DelegateTree):
    trees: tuple[DelegateWeighted, ...]


@attrs.frozen
class DelegateLeaf(DelegateTree):
    """A bound name, with its first settled address."""

    bound: Bound
    addr: Addr


@attrs.frozen
class DelegateNeg(DelegateTree):
    pass


@attrs.frozen
class DelegateFail(DelegateTree):
    pass


@attrs.frozen
class DelegateEmpty(DelegateTree):
    pass


@attrs.frozen
class DelegateException(DelegateTree):
    message: str


class DelegationTooDeep(ValueError):
    """Delegation went deeper than L{MAX_DEPTH} lookups."""


# --------------------------------------------------------------------------
# delegation


async def _settled(var: Var[Any]) -> Any:
    """The first value of C{var} that is not pending."""
    d: Deferred[Any] = Deferred()
    handle: list[Any] = [None]

    def onValue(value: Any) -> None:
        if value is ADDR_PENDING or type(value) is Pending or d.called:
            return
        d.callback(value)
        if handle[0] is not None:
            handle[0].close()

    handle[0] = var.observe(onValue)
    if d.called:
        handle[0].close()
    return await d


class _Delegation:
    def __init__(self, interpreter: ConfiguredNamersInterpreter, dtab: Dtab) -> None:
        self.interpreter = interpreter
        self.dtab = dtab

    async def convert(
        self, path: Path, dentry: Dentry, tree: NameTree[Any], depth: int
    ) -> DelegateTree:
        """C{tree} (a destination or a namer's answer) as delegation nodes, bound."""
        if depth > MAX_DEPTH:
            raise DelegationTooDeep("Max recursion level reached.")
        cls = type(tree)
        if cls is Leaf:
            value = tree.value  # type: ignore[attr-defined]
            if type(value) is Path:
                return await self.lookup(value, dentry, depth + 1)
            addr = await _settled(value.addr)
            return DelegateLeaf(path, dentry, value, addr)
        if cls is Alt or cls is Union:
            children = (
                tree.trees  # type: ignore[attr-defined]
                if cls is Alt
                else [w.tree for w in tree.trees]  # type: ignore[attr-defined]
            )
            if len(children) == 1:
                return DelegateDelegate(
                    path, dentry, await self.convert(path, dentry, children[0], depth)
                )
            results: list[DelegateTree] = []
            for child in children:
                try:
                    results.append(await self.convert(path, dentry, child, depth))
                except Exception as e:
                    results.append(DelegateException(path, dentry, str(e)))
            if cls is Alt:
                return (
                    DelegateAlt(path, dentry, tuple(results))
                    if results
                    else DelegateNeg(path, dentry)
                )
            weights = [w.weight for w in tree.trees]  # type: ignore[attr-defined]
            if not results:
                return DelegateNeg(path, dentry)
            return DelegateUnion(
                path,
                dentry,
                tuple(DelegateWeighted(w, r) for w, r in zip(weights, results, strict=True)),
            )
        if tree is NEG:
            return DelegateNeg(EMPTY_PATH, dentry)
        if tree is FAIL:
            return DelegateFail(path, dentry)
        if tree is EMPTY:
            return DelegateEmpty(path, dentry)
        raise TypeError(f"not a name tree: {tree!r}")

    async def lookup(self, path: Path, dentry: Dentry, depth: int) -> DelegateTree:
        """Delegate C{path}, which C{dentry} produced."""
        if depth > MAX_DEPTH:
            raise DelegationTooDeep("Max recursion level reached.")
        matches = self.dtab.matching(path)
        if len(matches) == 1:
            match = matches[0]
            return DelegateDelegate(
                path, dentry, await self.convert(path, match, match.rewrite(path), depth)
            )
        if matches:
            return await self._alt(path, dentry, matches, depth)
        found = self.interpreter.namerLookup(path)
        try:
            if isinstance(found, NameTree):
                tree: NameTree[Any] = found
            else:
                state = await _settled(found.var)
                if type(state) is Failed:
                    return DelegateException(path, dentry, str(state.exception))
                assert type(state) is Ok
                tree = state.value
            if tree is NEG:
                return DelegateNeg(path, dentry)
            return await self.convert(path, dentry, tree, depth)
        except DelegationTooDeep:
            raise
        except Exception as e:
            return DelegateException(path, dentry, str(e))

    async def _alt(
        self, path: Path, dentry: Dentry, matches: Sequence[Dentry], depth: int
    ) -> DelegateTree:
        results: list[DelegateTree] = []
        for match in matches:
            try:
                results.append(await self.convert(path, match, match.rewrite(path), depth))
            except Exception as e:
                results.append(DelegateException(path, dentry, str(e)))
        return DelegateAlt(path, dentry, tuple(results))


def delegate(
    interpreter: ConfiguredNamersInterpreter, dtab: Dtab, path: Path
) -> Deferred[DelegateTree]:
    """
    Explain how C{interpreter} binds C{path} through C{dtab}: a Deferred
    firing with the simplified L{DelegateTree}, or failing with
    L{DelegationTooDeep}.
    """

    async def run() -> DelegateTree:
        tree = await _Delegation(interpreter, dtab).lookup(path, NOP, 1)
        return simplify(tree)

    return Deferred.fromCoroutine(run())


# --------------------------------------------------------------------------
# simplification


def _withDentry(tree: DelegateTree, dentry: Dentry) -> DelegateTree:
    return attrs.evolve(tree, dentry=dentry)


def simplify(tree: DelegateTree) -> DelegateTree:
    """Linkerd's C{DelegateTree.simplified}."""
    if type(tree) is DelegateDelegate:
        child = simplify(tree.tree)
        if (
            type(child) not in (DelegateNeg, DelegateFail, DelegateEmpty)
            and child.path == tree.path
        ):
            return _withDentry(child, tree.dentry)
        return DelegateDelegate(tree.path, tree.dentry, child)
    if type(tree) is DelegateAlt:
        if not tree.trees:
            return DelegateNeg(tree.path, tree.dentry)
        if len(tree.trees) == 1:
            return simplify(DelegateDelegate(tree.path, tree.dentry, tree.trees[0]))
        spliced: list[DelegateTree] = []
        for t in tree.trees:
            s = simplify(t)
            if type(s) is DelegateAlt and s.path == tree.path:
                spliced.extend(s.trees)
            else:
                spliced.append(s)
        return DelegateAlt(tree.path, tree.dentry, tuple(spliced))
    if type(tree) is DelegateUnion:
        if not tree.trees:
            return DelegateNeg(tree.path, tree.dentry)
        if len(tree.trees) == 1:
            return simplify(DelegateDelegate(tree.path, tree.dentry, tree.trees[0].tree))
        return DelegateUnion(
            tree.path,
            tree.dentry,
            tuple(DelegateWeighted(w.weight, simplify(w.tree)) for w in tree.trees),
        )
    return tree


# --------------------------------------------------------------------------
# JSON


def addrJson(addr: Addr) -> dict[str, Any]:
    """An address state as C{/delegator.json} writes it."""
    if type(addr) is AddrBound:
        return {
            "type": "bound",
            "addrs": [
                {"ip": a.host, "port": a.port, "meta": dict(a.meta)}
                for a in sorted(addr.addresses, key=lambda a: (a.host, a.port))
            ],
            "meta": dict(addr.meta),
        }
    if type(addr) is AddrFailed:
        return {"type": "failed", "cause": addr.reason}
    if addr is ADDR_NEG:
        return {"type": "neg"}
    return {"type": "pending"}


def delegateJson(tree: DelegateTree) -> dict[str, Any]:
    """C{tree} in the JSON shape of Linkerd's C{/delegator.json}."""
    cls = type(tree)
    kind = cls.__name__[len("Delegate") :].lower()
    path = tree.path.show
    if cls is DelegateNeg and not tree.path.elems:
        path = "~"
    elif cls is DelegateFail and not tree.path.startswith(_FAIL_PATH):
        path = "!"
    out: dict[str, Any] = {"type": kind, "path": path}
    if tree.dentry != NOP:
        out["dentry"] = {"prefix": tree.dentry.prefix.show, "dst": tree.dentry.dst.show}
    if isinstance(tree, DelegateDelegate):
        out["delegate"] = delegateJson(tree.tree)
    elif isinstance(tree, DelegateAlt):
        out["alt"] = [delegateJson(t) for t in tree.trees]
    elif isinstance(tree, DelegateUnion):
        out["union"] = [{"weight": w.weight, "tree": delegateJson(w.tree)} for w in tree.trees]
    elif isinstance(tree, DelegateLeaf):
        out["bound"] = {
            "addr": addrJson(tree.addr),
            "id": tree.bound.id.show,
            "path": tree.bound.residual.show,
        }
    elif isinstance(tree, DelegateException):
        out["message"] = tree.message
    return out


_FAIL_PATH = Path(b"$", b"fail")


def explain(
    dtabText: str, pathText: str, interpreter: ConfiguredNamersInterpreter
) -> Deferred[dict[str, Any]]:
    """
    The C{/delegator.json} body for a dtab and a path given as text (what
    C{linkrouter delegate --dtab DTAB PATH} prints).

    @raise ParseError: C{Invalid dtab: ...} or C{Invalid path: ...}.
    @return: a Deferred firing with the JSON-ready dict; a delegation
        deeper than the bound gives an C{exception} node at the root.
    """
    try:
        dtab = Dtab.read(dtabText)
    except ParseError as e:
        raise ParseError(f"Invalid dtab: {e}") from None
    try:
        path = Path.read(pathText)
    except ParseError as e:
        raise ParseError(f"Invalid path: {e}") from None

    def tooDeep(failure: Any) -> DelegateTree:
        failure.trap(DelegationTooDeep)
        return DelegateException(path, NOP, failure.getErrorMessage())

    return interpreter.delegate(dtab, path).addErrback(tooDeep).addCallback(delegateJson)
