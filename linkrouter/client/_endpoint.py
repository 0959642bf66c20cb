"""
One endpoint as the balancer sees it: the endpoint client plus the mutable
counters every pick reads.  Plain slots, no properties: this is read on
every request.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall

from .accrual import AccrualPolicy

# Accrual states.  Only ALIVE and PROBE_READY endpoints take requests.
ALIVE = 0
DEAD = 1
PROBE_READY = 2
PROBING = 3

STATE_NAMES = {ALIVE: "alive", DEAD: "dead", PROBE_READY: "probing", PROBING: "probing"}


class AddressLike(Protocol):
    """What the client stack reads of a L{linkrouter.naming.Address}."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def weight(self) -> float: ...


class Endpoint:
    __slots__ = (
        "address",
        "alive",
        "client",
        "cost",
        "deadSince",
        "deadUntil",
        "draining",
        "index",
        "key",
        "lastFailure",
        "pending",
        "policy",
        "probation",
        "rank",
        "stamp",
        "startSum",
        "state",
        "timer",
        "weight",
    )

    def __init__(
        self, address: AddressLike, client: Any, policy: AccrualPolicy, rank: float
    ) -> None:
        self.address = address
        self.key = (address.host, address.port)
        self.client = client
        self.weight = float(address.weight)
        self.policy = policy
        self.pending = 0
        self.state = ALIVE
        self.alive = True
        self.deadSince = 0.0
        self.deadUntil = 0.0
        self.lastFailure = 0.0
        self.timer: IDelayedCall | None = None
        self.draining = False
        self.probation = False
        # Distributor scratch space: peak-EWMA cost, its time stamp and the
        # sum of the start times of requests in flight; heap position; and
        # a random rank that orders the aperture.
        self.cost = 0.0
        self.stamp = 0.0
        self.startSum = 0.0
        self.index = 0
        self.rank = rank

    def __repr__(self) -> str:
        return f"<Endpoint {self.key[0]}:{self.key[1]} pending={self.pending} state={self.state}>"
