# -*- test-case-name: tests.test_client_accrual -*-
"""
Failure accrual backoffs: L{linkrouter.config.Backoff} values (C{backoff:
{kind: constant|jittered}}) as streams of delays.
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterator

from linkrouter.config import Backoff
from linkrouter.policy.backoff import constant, jittered

DEFAULT_ACCRUAL_BACKOFF = Backoff("jittered", 5000, 300000)
"""Linkerd's failure accrual default: jittered between 5 s and 300 s."""


def backoffStream(backoff: Backoff, rng: _random.Random) -> Iterator[float]:
    """
    An endless iterator of delays in seconds for C{backoff}: C{constant}
    repeats C{minMs}; C{jittered} is decorrelated jitter between C{minMs}
    and C{maxMs}, starting at C{minMs}.
    """
    if backoff.kind == "constant":
        return constant(backoff.minMs)
    return jittered(backoff.minMs, backoff.maxMs, rng)
