"""
Tests for L{linkrouter.config._policy}: how C{io.l5d.static} entries are laid
over each other, and the limits of retry budgets.
"""

from __future__ import annotations

import io

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.cli import main
from linkrouter.client.budget import RetryBudget as RuntimeBudget
from linkrouter.config import (
    ClientParams,
    ConfigError,
    PrefixPattern,
    RetryBudget,
    ServiceParams,
    SocketOptions,
)
from linkrouter.config._policy import PrefixedPolicy, merge
from linkrouter.naming import Path
from tests import plugin_fixtures
from tests._config import ConfigCase


@attrs.frozen
class Keys:
    """Protocol-specific keys as a protocol plugin reads them: C{None} is unset."""

    framed: bool | None = None
    size: int | None = None
    nested: SocketOptions | None = None


def policy(*entries: tuple[str, ClientParams]) -> PrefixedPolicy[ClientParams]:
    return PrefixedPolicy(
        ClientParams(failFast=False),
        tuple((PrefixPattern.read(prefix), params) for prefix, params in entries),
    )


class MergeTests(SynchronousTestCase):
    def test_protocolKeysKeyByKey(self) -> None:
        """
        A later entry's protocol keys override only the keys it sets: an
        earlier entry's C{framed} survives one that sets only C{size}, or
        only generic keys.
        """
        merged = policy(
            ("/", ClientParams(protocol=Keys(framed=False))),
            ("/$/inet/*/1", ClientParams(requestAttemptTimeoutMs=5, protocol=Keys())),
            ("/$/inet", ClientParams(protocol=Keys(size=7))),
        ).forPath(Path.read("/$/inet/127.0.0.1/1"))
        self.assertEqual(merged.protocol, Keys(framed=False, size=7))
        self.assertEqual(merged.requestAttemptTimeoutMs, 5)
        self.assertIs(merged.failFast, False)

    def test_protocolKeysOverridden(self) -> None:
        """A key a later entry does set wins over the earlier one."""
        merged = merge(
            ClientParams(protocol=Keys(framed=False, size=1)),
            ClientParams(protocol=Keys(framed=True)),
        )
        self.assertEqual(merged.protocol, Keys(framed=True, size=1))

    def test_nestedSectionsReplacedWhole(self) -> None:
        """
        Nested sections are replaced whole by a later entry that sets them,
        both among the generic keys and among a protocol's keys.
        """
        first = SocketOptions(noDelay=False, keepAlive=True)
        second = SocketOptions(readTimeoutMs=10)
        merged = merge(
            ClientParams(socketOptions=first, protocol=Keys(nested=first, size=1)),
            ClientParams(socketOptions=second, protocol=Keys(nested=second)),
        )
        self.assertEqual(merged.socketOptions, second)
        self.assertEqual(merged.protocol, Keys(nested=second, size=1))

    def test_otherProtocolValues(self) -> None:
        """
        Protocol values that are not attrs classes, or of different
        classes, are replaced whole; C{None} (nothing parsed) keeps the old.
        """
        self.assertEqual(
            merge(ClientParams(protocol="a"), ClientParams(protocol="b")).protocol, "b"
        )
        self.assertEqual(
            merge(ClientParams(protocol=Keys(size=1)), ClientParams(protocol="b")).protocol, "b"
        )
        self.assertEqual(
            merge(ClientParams(protocol=Keys(size=1)), ClientParams()).protocol, Keys(size=1)
        )

    def test_serviceProtocolKeysKeyByKey(self) -> None:
        """A service's protocol keys merge key by key as well."""
        merged = merge(
            ServiceParams(totalTimeoutMs=1, protocol=Keys(framed=False)),
            ServiceParams(protocol=Keys(size=2)),
        )
        self.assertEqual(merged, ServiceParams(totalTimeoutMs=1, protocol=Keys(False, 2)))


def budgetYaml(where: str, budget: str) -> str:
    """A configuration with C{budget} as the client's requeue budget or a service's."""
    if where == "client":
        section = f"  client:\n    requeueBudget: {budget}\n"
    else:
        section = f"  service:\n    retries:\n      budget: {budget}\n"
    return "routers:\n- protocol: test.line\n" + section


class BudgetTests(ConfigCase):
    def budgets(self, budget: str) -> list[RetryBudget]:
        client = self.parse(budgetYaml("client", budget)).routers[0].client
        service = self.parse(budgetYaml("service", budget)).routers[0].service
        retries = service.forPath(Path.read("/svc/a")).retries
        assert retries is not None
        requeue = client.forPath(Path.read("/$/inet/a/1")).requeueBudget
        assert requeue is not None
        return [requeue, retries.budget]

    def test_limits(self) -> None:
        """The extreme values Finagle accepts are accepted."""
        for budget in self.budgets("{ttlSecs: 1, minRetriesPerSec: 0, percentCanRetry: 0}"):
            self.assertEqual(budget, RetryBudget(0, 0.0, 1))
        for budget in self.budgets("{ttlSecs: 60, percentCanRetry: 1000}"):
            self.assertEqual(budget, RetryBudget(10, 1000.0, 60))

    def test_ttlOutOfRange(self) -> None:
        """
        C{ttlSecs} outside 1 to 60 is one positioned problem, in a requeue
        budget and in a retry budget alike.
        """
        for ttl in (0, -1, 61, 3600):
            self.assertEqual(
                self.problems(budgetYaml("client", f"{{ttlSecs: {ttl}}}")),
                [
                    f"l.yaml:4:30: routers[0].client.requeueBudget.ttlSecs: "
                    f"must be between 1 and 60, not {ttl}"
                ],
            )
            self.assertEqual(
                self.problems(budgetYaml("service", f"{{ttlSecs: {ttl}}}")),
                [
                    f"l.yaml:5:25: routers[0].service.retries.budget.ttlSecs: "
                    f"must be between 1 and 60, not {ttl}"
                ],
            )

    def test_otherKeysOutOfRange(self) -> None:
        """
        A negative C{minRetriesPerSec}, and a C{percentCanRetry} outside 0
        to 1000, are problems too.
        """
        self.assertEqual(
            self.problems(budgetYaml("service", "{minRetriesPerSec: -1, percentCanRetry: 1000.5}")),
            [
                "l.yaml:5:34: routers[0].service.retries.budget.minRetriesPerSec: "
                "must not be negative",
                "l.yaml:5:55: routers[0].service.retries.budget.percentCanRetry: "
                "must be between 0.0 and 1000.0, not 1000.5",
            ],
        )
        self.assertEqual(
            self.problems(budgetYaml("client", "{percentCanRetry: -0.1}")),
            [
                "l.yaml:4:38: routers[0].client.requeueBudget.percentCanRetry: "
                "must be between 0.0 and 1000.0, not -0.1",
            ],
        )

    def test_staticEntry(self) -> None:
        """A budget in an C{io.l5d.static} entry is checked the same way."""
        text = """
routers:
- protocol: test.line
  service:
    kind: io.l5d.static
    configs:
    - prefix: /svc
      retries: {budget: {ttlSecs: 120}}
"""
        self.assertEqual(
            self.problems(text),
            [
                "l.yaml:8:35: routers[0].service.configs[0].retries.budget.ttlSecs: "
                "must be between 1 and 60, not 120"
            ],
        )

    def test_check(self) -> None:
        """C{linkrouter check} refuses such a configuration with one line."""
        plugin_fixtures.install(self)
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(budgetYaml("client", "{ttlSecs: 0}"))
        out, err = io.StringIO(), io.StringIO()
        status = main(["check", path], out, err)
        self.assertEqual((status, out.getvalue()), (1, ""))
        self.assertEqual(
            err.getvalue(),
            f"{path}:4:30: routers[0].client.requeueBudget.ttlSecs: "
            "must be between 1 and 60, not 0\n",
        )

    @settings(max_examples=200, deadline=None)
    @given(
        st.integers(-5, 100),
        st.integers(-5, 100),
        st.floats(-10.0, 2000.0, allow_nan=False),
    )
    def test_acceptedBudgetsBuild(self, ttl: int, minimum: int, percent: float) -> None:
        """
        The runtime retry budget can be built from whatever the
        configuration accepts, and whatever it cannot be built from is
        refused, one problem per bad key.
        """
        written = f"{percent:.4f}"
        percent = float(written)
        budget = f"{{ttlSecs: {ttl}, minRetriesPerSec: {minimum}, percentCanRetry: {written}}}"
        bad = (not 1 <= ttl <= 60) + (minimum < 0) + (not 0 <= percent <= 1000)
        try:
            [requeue, retry] = self.budgets(budget)
        except ConfigError as e:
            self.assertEqual(len(e.problems), bad)
            self.assertRaises(ValueError, RuntimeBudget, ttl, minimum, percent, Clock())
        else:
            self.assertEqual(bad, 0)
            self.assertEqual(requeue, RetryBudget(minimum, percent, ttl))
            self.assertEqual(retry, requeue)
            RuntimeBudget.fromConfig(requeue, Clock())
