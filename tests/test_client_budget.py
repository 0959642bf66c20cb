"""
Tests for L{linkrouter.client.budget.RetryBudget}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.client.budget import RetryBudget
from linkrouter.config import RetryBudget as RetryBudgetValue


class RetryBudgetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)

    def drain(self, budget: RetryBudget) -> int:
        n = 0
        while budget.tryWithdraw():
            n += 1
            assert n < 100000
        return n

    def test_reserve(self) -> None:
        """Without deposits, C{minRetriesPerSec * ttlSecs} retries are allowed."""
        budget = RetryBudget(10, 5, 0.2, self.clock)
        self.assertEqual(budget.balance, 50)
        self.assertEqual(self.drain(budget), 50)
        self.assertEqual(budget.balance, 0)

    def test_deposits(self) -> None:
        """Each request allows C{percentCanRetry} of a retry."""
        budget = RetryBudget(10, 0, 0.2, self.clock)
        for _ in range(100):
            budget.deposit()
        self.assertEqual(budget.balance, 20)
        self.assertEqual(self.drain(budget), 20)

    def test_depositsExpire(self) -> None:
        budget = RetryBudget(2, 0, 1.0, self.clock)
        for _ in range(10):
            budget.deposit()
        self.clock.advance(1)
        for _ in range(5):
            budget.deposit()
        self.assertEqual(budget.balance, 15)
        self.clock.advance(1)
        self.assertEqual(budget.balance, 5)
        self.clock.advance(5)
        self.assertEqual(budget.balance, 0)

    def test_withdrawalsExpire(self) -> None:
        """The reserve refills as withdrawals age out."""
        budget = RetryBudget(3, 1, 0.0, self.clock)
        self.assertEqual(self.drain(budget), 3)
        self.clock.advance(3)
        self.assertEqual(budget.balance, 3)

    def test_zero(self) -> None:
        budget = RetryBudget(10, 0, 0.0, self.clock)
        budget.deposit()
        self.assertFalse(budget.tryWithdraw())

    def test_fromConfig(self) -> None:
        """Linkerd's defaults: 10 s, 10 per second, 20%."""
        budget = RetryBudget.fromConfig(RetryBudgetValue(), self.clock)
        self.assertEqual(budget.balance, 100)
        for _ in range(50):
            budget.deposit()
        self.assertEqual(budget.balance, 110)

    def test_invalid(self) -> None:
        for args in [(0, 1, 0.1), (61, 1, 0.1), (10, -1, 0.1), (10, 1, -0.5), (10, 1, 1001)]:
            self.assertRaises(ValueError, RetryBudget, *args, self.clock)

    def test_depositAt(self) -> None:
        """
        A deposit at a time the caller has just read goes in that second's
        bucket and expires with it, as one reading the clock would.
        """
        budget = RetryBudget(2, 0, 1.0, self.clock)
        budget.deposit(self.clock.seconds() + 0.5)
        budget.deposit(self.clock.seconds() + 1.5)
        self.assertEqual(budget.balance, 2)
        self.clock.advance(2)
        self.assertEqual(budget.balance, 1)
        self.clock.advance(1)
        self.assertEqual(budget.balance, 0)

    def test_clockGoesBack(self) -> None:
        """A time before the current second counts in the current second."""
        budget = RetryBudget(2, 0, 1.0, self.clock)
        budget.deposit(self.clock.seconds() - 5)
        self.assertEqual(budget.balance, 1)
        self.clock.advance(2)
        self.assertEqual(budget.balance, 0)
