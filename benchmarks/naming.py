"""
Naming micro-benchmarks: C{python -m benchmarks.naming} prints the median
microseconds per operation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from zope.interface import implementer

from linkrouter.interfaces import INamer
from linkrouter.naming import (
    Activity,
    Addr,
    AddrBound,
    Address,
    Bound,
    ConfiguredNamersInterpreter,
    Dtab,
    Leaf,
    NameTree,
    Path,
    Var,
)
from linkrouter.naming.dtab import DtabScanner

HEADER = "/svc/users=>/#/io.l5d.fs/users-canary;/svc/web=>/$/inet/127.0.0.1/9000;/host=>/svc"
BASE = ";".join(f"/svc/s{i}=>/#/io.l5d.fs/s{i}" for i in range(49)) + ";/svc=>/#/io.l5d.fs"
OVERRIDE = "/svc/users=>/#/io.l5d.fs/users-canary"


@implementer(INamer)
class ResolvedNamer:
    """Every name is already resolved: a constant activity per path."""

    def __init__(self) -> None:
        self.cache: dict[Path, Activity[NameTree[Bound]]] = {}

    def lookup(self, path: Path) -> Activity[NameTree[Bound]]:
        found = self.cache.get(path)
        if found is None:
            addr: Var[Addr] = Var(AddrBound(frozenset([Address("127.0.0.1", 8080)])))
            found = Activity.value(
                Leaf(Bound(Path.read("/#/io.l5d.fs") + path.take(1), addr, path.drop(1)))
            )
            self.cache[path] = found
        return found


def median(fn: Callable[[], object], loops: int = 2000, rounds: int = 7) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        samples.append((time.perf_counter() - start) / loops * 1e6)
    return statistics.median(samples)


def main() -> None:
    base = Dtab.read(BASE)
    path = Path.read("/svc/users/list")
    interpreter = ConfiguredNamersInterpreter(
        [(Path.read("/#/io.l5d.fs"), ResolvedNamer())],
        resolver=lambda host: None,  # type: ignore[arg-type, return-value]
    )

    def parseUncached() -> Dtab:
        scanner = DtabScanner(HEADER)
        dtab = scanner.dtab()
        scanner.end()
        return dtab

    def parseBind() -> object:
        return interpreter.bind(base + Dtab.read(OVERRIDE), path).state

    results = [
        ("parse 3-entry l5d-dtab header (uncached)", median(parseUncached)),
        ("parse 3-entry l5d-dtab header (LRU hit)", median(lambda: Dtab.read(HEADER))),
        ("lookup in 50-entry dtab", median(lambda: base.lookup(path))),
        ("parse override + bind through 50+1 entries", median(parseBind)),
    ]
    for name, us in results:
        print(f"{name:48s} {us:8.2f} us/op")


if __name__ == "__main__":
    main()
