# -*- test-case-name: tests.test_policy_config -*-
"""
From a service's parsed configuration to its runtime policy.

The C{service} section is parsed by L{linkrouter.config} (L{ServiceParams},
per destination with C{PrefixedPolicy.forPath}); this module turns those
values into the retry filter's parts.
"""

from __future__ import annotations

from collections.abc import Callable
from random import Random
from typing import Any

from twisted.internet.interfaces import IReactorTime

from linkrouter.client.budget import RetryBudget
from linkrouter.config import Backoff, Retries, ServiceParams
from linkrouter.config import RetryBudget as BudgetConfig
from linkrouter.interfaces import IClient, IResponseClassifier, IStatsReceiver
from linkrouter.policy.backoff import BackoffFactory, fromConfig
from linkrouter.policy.retries import RetryingClient
from linkrouter.policy.timeouts import Deadline


def backoffFactory(config: Backoff, rng: Random | None = None) -> BackoffFactory:
    """A maker of fresh backoffs (one per request) for C{retries.backoff}."""
    source = rng or Random()
    return lambda: fromConfig(config, source)


def retryBudget(config: BudgetConfig, clock: IReactorTime) -> RetryBudget:
    """A new budget for C{retries.budget}: one per service, never shared."""
    return RetryBudget(config.ttlSecs, config.minRetriesPerSec, config.percentCanRetry, clock)


def retryingClient(
    client: IClient,
    params: ServiceParams,
    classifier: IResponseClassifier,
    clock: IReactorTime,
    stats: IStatsReceiver,
    *,
    mayResend: Callable[[Any], bool],
    stampDeadline: Callable[[Any, Deadline], object],
    discard: Callable[[Any], object],
    rng: Random | None = None,
) -> RetryingClient[Any]:
    """
    The service client for one destination: C{client} (the destination's
    client) wrapped with the policy of C{params} (from
    C{PrefixedPolicy.forPath}).

    @param classifier: built from C{params.responseClassifier}.
    @param stats: the service's scope (C{rt/<router>/service/<dst>}).
    """
    retries = params.retries or Retries()
    timeout = params.totalTimeoutMs
    return RetryingClient(
        client,
        classifier=classifier,
        budget=retryBudget(retries.budget, clock),
        backoff=backoffFactory(retries.backoff, rng),
        clock=clock,
        stats=stats,
        totalTimeout=None if timeout is None else timeout / 1000,
        mayResend=mayResend,
        stampDeadline=stampDeadline,
        discard=discard,
    )
