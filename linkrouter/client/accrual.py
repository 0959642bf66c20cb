# -*- test-case-name: tests.test_client_accrual -*-
"""
Failure accrual policies: when to stop sending to an endpoint, and for how
long.

An L{AccrualPolicy} is per endpoint and knows nothing of time except through
the backoff schedule and an injected clock; the balancer owns the
alive/dead/probing state machine and the client-wide limits
(C{maxEjectionPercent}, the all-dead fallback).
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Iterator
from typing import Protocol

import attrs
from twisted.internet.interfaces import IReactorTime

from linkrouter.config import Backoff, Section
from linkrouter.config._policy import parseBackoff
from linkrouter.policy.backoff import fromConfig

from ._parse import getNumber

DEFAULT_ACCRUAL_BACKOFF = Backoff("jittered", 5000, 300000)
"""Linkerd's failure accrual default: jittered between 5 s and 300 s."""

CONSECUTIVE_FAILURES = "io.l5d.consecutiveFailures"
SUCCESS_RATE = "io.l5d.successRate"
SUCCESS_RATE_WINDOWED = "io.l5d.successRateWindowed"
NONE = "none"


class AccrualPolicy(Protocol):
    """
    One endpoint's failure accounting.
    """

    def recordSuccess(self) -> None:
        """A request to a live endpoint succeeded."""

    def recordFailure(self) -> bool:
        """A request to a live endpoint failed; C{True} to mark it dead."""

    def nextBackoff(self) -> float:
        """Seconds to keep the endpoint dead, advancing the schedule."""

    def revived(self) -> None:
        """The endpoint answered a probe: start afresh."""


class _Policy:
    def __init__(self, backoff: Backoff, rng: _random.Random) -> None:
        self._backoff = backoff
        self._rng = rng
        self._stream: Iterator[float] | None = None

    def nextBackoff(self) -> float:
        if self._stream is None:
            self._stream = fromConfig(self._backoff, self._rng)
        return next(self._stream)

    def revived(self) -> None:
        self._stream = None


class ConsecutiveFailures(_Policy):
    def __init__(self, failures: int, backoff: Backoff, rng: _random.Random) -> None:
        super().__init__(backoff, rng)
        self._threshold = failures
        self._failures = 0

    def recordSuccess(self) -> None:
        self._failures = 0

    def recordFailure(self) -> bool:
        self._failures += 1
        return self._failures >= self._threshold

    def revived(self) -> None:
        super().revived()
        self._failures = 0


class SuccessRate(_Policy):
    """
    Exponentially weighted success rate over about C{requests} requests;
    judged only once that many requests have been seen.
    """

    def __init__(
        self, successRate: float, requests: int, backoff: Backoff, rng: _random.Random
    ) -> None:
        super().__init__(backoff, rng)
        self._required = successRate
        self._window = requests
        self._alpha = 2.0 / (requests + 1)
        self._rate = 1.0
        self._seen = 0

    def _observe(self, value: float) -> None:
        self._rate += self._alpha * (value - self._rate)
        self._seen += 1

    def recordSuccess(self) -> None:
        self._observe(1.0)

    def recordFailure(self) -> bool:
        self._observe(0.0)
        return self._seen >= self._window and self._rate < self._required

    def revived(self) -> None:
        super().revived()
        self._rate = 1.0
        self._seen = 0


class SuccessRateWindowed(_Policy):
    """
    Success rate decayed over C{window} seconds of time; judged only once a
    full window has passed since the first observation.
    """

    def __init__(
        self,
        successRate: float,
        window: float,
        clock: IReactorTime,
        backoff: Backoff,
        rng: _random.Random,
    ) -> None:
        super().__init__(backoff, rng)
        self._required = successRate
        self._window = window
        self._clock = clock
        self._rate = 1.0
        self._first: float | None = None
        self._stamp = 0.0

    def _observe(self, value: float) -> float:
        now = self._clock.seconds()
        if self._first is None:
            self._first = self._stamp = now
        weight = math.exp(-max(now - self._stamp, 0.0) / self._window)
        self._rate = self._rate * weight + value * (1.0 - weight)
        self._stamp = now
        return now

    def recordSuccess(self) -> None:
        self._observe(1.0)

    def recordFailure(self) -> bool:
        now = self._observe(0.0)
        assert self._first is not None
        return now - self._first >= self._window and self._rate < self._required

    def revived(self) -> None:
        super().revived()
        self._rate = 1.0
        self._first = None


class NoAccrual:
    """C{kind: none}: never marks anything dead."""

    def recordSuccess(self) -> None:
        pass

    def recordFailure(self) -> bool:
        return False

    def nextBackoff(self) -> float:
        return 0.0

    def revived(self) -> None:
        pass


@attrs.frozen
class AccrualConfig:
    """
    A parsed C{failureAccrual} section.  C{maxEjectionPercent} is our
    extension: at most that share of a client's endpoints is marked dead at
    once (at least one endpoint may always be, unless it is 0).
    """

    kind: str = CONSECUTIVE_FAILURES
    failures: int = 5
    successRate: float = 0.0
    requests: int = 0
    window: int = 0
    backoff: Backoff = DEFAULT_ACCRUAL_BACKOFF
    maxEjectionPercent: int = 50


DEFAULT_ACCRUAL = AccrualConfig()


class AccrualFactory:
    """
    What L{linkrouter.interfaces.IFailureAccrualPlugin.build} returns: call
    it for a fresh per-endpoint L{AccrualPolicy}.
    """

    def __init__(
        self,
        config: AccrualConfig,
        clock: IReactorTime,
        rng: _random.Random | None = None,
    ) -> None:
        self.config = config
        self.maxEjectionPercent = config.maxEjectionPercent
        self._clock = clock
        self._rng = rng if rng is not None else _random.Random()

    def __call__(self) -> AccrualPolicy:
        c = self.config
        if c.kind == CONSECUTIVE_FAILURES:
            return ConsecutiveFailures(c.failures, c.backoff, self._rng)
        if c.kind == SUCCESS_RATE:
            return SuccessRate(c.successRate, c.requests, c.backoff, self._rng)
        if c.kind == SUCCESS_RATE_WINDOWED:
            return SuccessRateWindowed(c.successRate, c.window, self._clock, c.backoff, self._rng)
        return NoAccrual()


def parseAccrual(kind: str, section: Section) -> AccrualConfig:
    """
    Read the keys of a C{failureAccrual} section of C{kind}.
    """
    if kind == NONE:
        return AccrualConfig(NONE)
    backoff = (
        parseBackoff(section.section("backoff"))
        if section.has("backoff")
        else DEFAULT_ACCRUAL_BACKOFF
    )
    maxEjection = getNumber(section, "maxEjectionPercent", 50, low=0, high=100, integer=True)
    if kind == CONSECUTIVE_FAILURES:
        failures = getNumber(section, "failures", 5, low=1, integer=True)
        return AccrualConfig(
            kind, failures=failures, backoff=backoff, maxEjectionPercent=maxEjection
        )
    if kind in (SUCCESS_RATE, SUCCESS_RATE_WINDOWED):
        rate = getNumber(section, "successRate", None, low=0.0, high=1.0)
        key = "requests" if kind == SUCCESS_RATE else "window"
        size = getNumber(section, key, None, low=1, integer=True)
        size = size or 1
        return AccrualConfig(
            kind,
            successRate=rate if rate is not None else 0.0,
            requests=size if kind == SUCCESS_RATE else 0,
            window=size if kind == SUCCESS_RATE_WINDOWED else 0,
            backoff=backoff,
            maxEjectionPercent=maxEjection,
        )
    raise ValueError(f"unknown failure accrual kind {kind!r}")
