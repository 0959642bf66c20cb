# -*- test-case-name: tests.test_naming_bind -*-
"""
Binding: L{ConfiguredNamersInterpreter} turns a path and a dtab into an
L{Activity} of a name tree of L{Bound} names, through the dtab, the
configured namers (C{/#/<prefix>}) and the system namers (C{/$/...}).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import implementer

from linkrouter.interfaces import IDelegator, IInterpreter, INamer

from .addr import Addr, AddrBound, Bound
from .dtab import Dentry, Dtab
from .nametree import NEG, Alt, Leaf, NameTree, Union, Weighted
from .path import Path
from .system import Name, Resolver, SystemNamer, reactorResolver
from .var import PENDING, Activity, Failed, Ok, Pending, State, Var

Lookup = NameTree[Name] | Activity[NameTree[Name]]
"""A lookup result: a tree known now, or an activity of one."""

Result = NameTree[Bound] | Pending | Failed
"""The outcome of binding one node."""


class NamerExceededMaxDepth(Exception):
    """A dtab delegated deeper than the interpreter allows (a loop, usually)."""


def _addWeight(weight: float) -> Callable[[Addr], Addr]:
    def add(addr: Addr) -> Addr:
        if type(addr) is AddrBound:
            meta = frozenset(
                [kv for kv in addr.meta if kv[0] != "namer_nametree_weight"]
                + [("namer_nametree_weight", weight)]
            )
            return AddrBound(addr.addresses, meta)
        return addr

    return add


@implementer(IInterpreter, IDelegator)
class ConfiguredNamersInterpreter:
    """
    Binds with the dtab first; a path the dtab has no entry for (or only
    C{~} entries) goes to the configured namers whose prefix it starts
    with, the namer listed last in C{namers} first, then to the system
    namers under C{/$/}.

    @param namers: C{(prefix, namer)} pairs in configuration order; prefixes
        are complete (C{/#/io.l5d.fs}).
    @param resolver: resolves host names for C{/$/inet}; by default the
        global reactor's name resolver.
    @param maxDepth: the most lookups one chain of delegation may use.
    """

    def __init__(
        self,
        namers: Sequence[tuple[Path, INamer]] = (),
        resolver: Resolver | None = None,
        maxDepth: int = 100,
    ) -> None:
        self.namers = tuple(reversed(namers))
        if resolver is None:
            from twisted.internet import reactor

            resolver = reactorResolver(reactor)  # type: ignore[arg-type]
        self.system = SystemNamer(resolver)
        self.maxDepth = maxDepth

    def lookup(self, dtab: Dtab, path: Path) -> Lookup:
        """
        One delegation step: the dtab's rewrite of C{path}, or else the
        namers' answer.  Never raises: a failing namer gives a failed
        activity.
        """
        found = self._step(dtab, path)
        if isinstance(found, list):
            trees: list[NameTree[Any]] = [d.rewrite(path) for d in found]
            return Alt(*trees)
        return found

    def _step(self, dtab: Dtab, path: Path) -> Lookup | list[Dentry]:
        """
        L{lookup}, with several matching entries left as a list (last
        first) for a binding to rewrite one by one as it needs them.
        """
        matches = dtab.matching(path)
        if len(matches) > 1:
            return matches
        if matches:
            tree: NameTree[Any] = matches[0].rewrite(path)
            if tree is not NEG:
                return tree
        return self.namerLookup(path)

    def namerLookup(self, path: Path) -> Lookup:
        """
        The configured namers' answer for C{path}, falling through namers
        that answer C{~}, and finally the system namers'.
        """
        elems = path.elems
        candidates = []
        for prefix, namer in self.namers:
            if elems[: len(prefix.elems)] == prefix.elems:
                candidates.append((prefix, namer))
        return self._tryNamers(candidates, path)

    def _tryNamers(self, candidates: list[tuple[Path, INamer]], path: Path) -> Lookup:
        if not candidates:
            try:
                return self.system.lookup(path)
            except Exception as e:
                return Activity.failed(e)
        prefix, namer = candidates[0]
        try:
            activity: Activity[NameTree[Name]] = namer.lookup(path.drop(len(prefix.elems)))
        except Exception as e:
            return Activity.failed(e)
        if len(candidates) == 1 and path.elems[:1] != (b"$",):
            # Falling through to the system namers could only give ~.
            return activity

        def orNext(tree: NameTree[Name]) -> Activity[NameTree[Name]]:
            if tree is not NEG:
                return Activity.value(tree)
            rest = self._tryNamers(candidates[1:], path)
            return rest if isinstance(rest, Activity) else Activity.value(rest)

        return activity.flatMap(orNext)

    def bind(self, dtab: Dtab, path: Path) -> Activity[NameTree[Bound]]:  # type: ignore[override]
        """
        Bind C{path} through C{dtab}.  The activity follows every namer
        answer the binding used, and re-binds when one changes.
        """

        def start(update: Callable[[State[NameTree[Bound]]], None]) -> Callable[[], None]:
            return _Binding(self, dtab, path, update).stop

        return Activity(Var.watched(PENDING, start))

    def delegate(self, dtab: Dtab, path: Path) -> Deferred[Any]:  # type: ignore[override]
        from .delegate import delegate

        return delegate(self, dtab, path)


_UNREPORTED: Any = object()
"""A new watch's state until its activity reports the current one."""


class _Binding:
    """One observed binding: evaluates, watches the namers it used, repeats."""

    __slots__ = (
        "dirty",
        "dtab",
        "evaluating",
        "interpreter",
        "lookups",
        "path",
        "update",
        "used",
        "watches",
    )

    def __init__(
        self,
        interpreter: ConfiguredNamersInterpreter,
        dtab: Dtab,
        path: Path,
        update: Callable[[State[NameTree[Bound]]], None],
    ) -> None:
        self.interpreter = interpreter
        self.dtab = dtab
        self.path = path
        self.update = update
        self.lookups: dict[tuple[bytes, ...], Lookup | list[Dentry]] = {}
        # id(activity) -> (activity, observation, latest state)
        self.watches: dict[int, list[Any]] = {}
        self.used: set[int] = set()
        self.evaluating = False
        self.dirty = False
        self.evaluate()

    def stop(self) -> None:
        watches, self.watches = self.watches, {}
        for _, closable, _ in watches.values():
            closable.close()

    def evaluate(self) -> None:
        self.evaluating = True
        try:
            for _ in range(100):
                self.dirty = False
                self.used = set()
                result = self.bind(Leaf(self.path), 0, None)
                if not self.dirty:
                    break
        finally:
            self.evaluating = False
        if len(self.watches) > len(self.used):
            for key in [k for k in self.watches if k not in self.used]:
                _, closable, _ = self.watches.pop(key)
                closable.close()
            self.lookups = {
                p: r
                for p, r in self.lookups.items()
                if not isinstance(r, Activity) or id(r) in self.used
            }
        if isinstance(result, NameTree):
            self.update(Ok(result))
        else:
            self.update(result)

    def onChange(self, key: int, state: State[Any]) -> None:
        watch = self.watches.get(key)
        if watch is None:
            return
        first = watch[2] is _UNREPORTED
        watch[2] = state
        if first:
            # The state observe() reports at once, which stateOf() returns.
            return
        if self.evaluating:
            self.dirty = True
        else:
            self.evaluate()

    def stateOf(self, activity: Activity[NameTree[Name]]) -> State[NameTree[Name]]:
        key = id(activity)
        self.used.add(key)
        watch = self.watches.get(key)
        if watch is None:
            watch = [activity, None, _UNREPORTED]
            self.watches[key] = watch
            watch[1] = activity.var.observe(lambda s: self.onChange(key, s))
        state: State[NameTree[Name]] = watch[2]
        return state

    def bind(self, tree: NameTree[Any], depth: int, weight: float | None) -> Result:
        interpreter = self.interpreter
        if depth > interpreter.maxDepth:
            return Failed(
                NamerExceededMaxDepth(
                    f"Max recursion level: {interpreter.maxDepth} reached in Namer lookup"
                    f" of {self.path.show} with dtab {self.dtab.show}"
                )
            )
        cls = type(tree)
        if cls is Leaf:
            value = tree.value  # type: ignore[attr-defined]
            if type(value) is Path:
                # Keyed by elements: tuples hash and compare in C.
                found = self.lookups.get(value.elems)
                if found is None:
                    found = self.lookups[value.elems] = interpreter._step(self.dtab, value)
                if isinstance(found, list):
                    # The Alt of the matching entries' rewrites, built lazily.
                    for dentry in found:
                        r = self.bind(dentry.rewrite(value), depth + 1, weight)
                        if r is not NEG:
                            return r
                    return NEG
                if isinstance(found, NameTree):
                    return self.bind(found, depth + 1, weight)
                state = self.stateOf(found)
                if type(state) is Ok:
                    return self.bind(state.value, depth + 1, weight)
                return state  # type: ignore[return-value]
            if weight is not None and type(value) is Bound:
                return Leaf(Bound(value.id, value.addr.map(_addWeight(weight)), value.residual))
            return tree
        if cls is Union:
            wtrees: tuple[Weighted[Any], ...] = tree.trees  # type: ignore[attr-defined]
            if len(wtrees) <= 1:
                return self.bind(wtrees[0].tree, depth, wtrees[0].weight) if wtrees else NEG
            oks: list[Weighted[Bound]] = []
            failure: Failed | None = None
            for w in wtrees:
                r = self.bind(w.tree, depth, w.weight)
                if isinstance(r, NameTree):
                    oks.append(Weighted(w.weight, r))
                elif failure is None and type(r) is Failed:
                    failure = r
            if oks:
                return Union(*oks).simplified
            return failure if failure is not None else PENDING
        if cls is Alt:
            trees: tuple[NameTree[Any], ...] = tree.trees  # type: ignore[attr-defined]
            for t in trees:
                r = self.bind(t, depth, weight)
                if r is not NEG:
                    return r
            return NEG
        return tree
