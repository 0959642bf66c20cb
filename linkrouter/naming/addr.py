# -*- test-case-name: tests.test_naming_bind -*-
"""
Addresses and bound names: L{Address}, the L{Addr} states (L{AddrBound},
L{ADDR_NEG}, L{ADDR_PENDING}, L{AddrFailed}) and L{Bound}.
"""

from __future__ import annotations

from typing import Final

import attrs

from .path import EMPTY_PATH, Path
from .var import Var

Meta = frozenset[tuple[str, object]]

WEIGHT_KEYS: Final = ("weight", "namer_nametree_weight")


def authority(host: str, port: int) -> str:
    """C{host:port}, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@attrs.frozen
class Address:
    """One endpoint, with metadata such as C{weight}."""

    host: str
    port: int
    meta: Meta = frozenset()

    @property
    def weight(self) -> float:
        """The C{weight} (or C{namer_nametree_weight}) metadata, default 1.0."""
        meta = dict(self.meta)
        for key in WEIGHT_KEYS:
            if key in meta:
                return float(meta[key])  # type: ignore[arg-type]
        return 1.0


@attrs.frozen
class AddrBound:
    """A set of addresses, plus metadata about the set."""

    addresses: frozenset[Address]
    meta: Meta = frozenset()


@attrs.frozen
class AddrFailed:
    """Resolution failed, for C{reason}."""

    reason: str


class _AddrSingleton:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


ADDR_NEG: Final = _AddrSingleton("ADDR_NEG")
"""The name has no addresses and never will (negative resolution)."""
ADDR_PENDING: Final = _AddrSingleton("ADDR_PENDING")
"""Resolution has not finished."""

Addr = AddrBound | AddrFailed | _AddrSingleton


@attrs.frozen
class Bound:
    """
    A bound name: C{id} identifies the destination (the consumed path),
    C{residual} is the unconsumed rest, C{addr} the changing addresses.
    Equality and hash use C{(id, residual)}.
    """

    id: Path
    addr: Var[Addr] = attrs.field(eq=False, repr=False)
    residual: Path = EMPTY_PATH

    @property
    def show(self) -> str:
        return self.id.show
