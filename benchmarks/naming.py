"""
Naming micro-benchmarks: C{python benchmarks/naming.py} (or C{python -m
benchmarks.naming}) prints the median microseconds per operation.

The override case is what a router pays for the first request that carries
a new C{l5d-dtab}: parse it, bind the path through the router's dtab plus
the override, and observe the binding (closing the observation is counted
too, though a router keeps it until the destination goes idle).  Later
requests with the same override find the observed binding in a dict.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

# Run as a script, sys.path[0] is benchmarks/, whose modules (http.py)
# would shadow the standard library: put the repository there instead.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from zope.interface import implementer  # noqa: E402

from linkrouter.interfaces import INamer  # noqa: E402
from linkrouter.naming import (  # noqa: E402
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
from linkrouter.naming.dtab import DtabScanner, parseDtab  # noqa: E402

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
    override = Dtab.read(OVERRIDE)
    path = Path.read("/svc/users/list")
    interpreter = ConfiguredNamersInterpreter(
        [(Path.read("/#/io.l5d.fs"), ResolvedNamer())],
        resolver=lambda host: None,  # type: ignore[arg-type, return-value]
    )

    def scan() -> Dtab:
        scanner = DtabScanner(HEADER)
        dtab = scanner.dtab()
        scanner.end()
        return dtab

    def parseBind() -> None:
        activity = interpreter.bind(base + parseDtab(OVERRIDE), path)
        activity.observe(_ignore).close()

    results = [
        ("parse 3-entry l5d-dtab header (uncached)", median(lambda: parseDtab(HEADER))),
        ("  the same with the general parser", median(scan)),
        ("  the same, cached (Dtab.read)", median(lambda: Dtab.read(HEADER))),
        ("lookup in 50-entry dtab", median(lambda: base.lookup(path))),
        ("parse override + bind through 50+1 entries", median(parseBind)),
        (
            "  bind only (.state of a fresh binding)",
            median(lambda: interpreter.bind(base + override, path).state),
        ),
    ]
    for name, us in results:
        print(f"{name:48s} {us:8.2f} us/op")


def _ignore(state: object) -> None:
    pass


if __name__ == "__main__":
    main()
