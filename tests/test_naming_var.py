from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import PENDING, Activity, Failed, Ok, Var


class VarTests(SynchronousTestCase):
    def test_observeAndSet(self) -> None:
        v = Var(1)
        seen: list[int] = []
        c = v.observe(seen.append)
        v.set(1)
        v.set(2)
        c.close()
        c.close()
        v.set(3)
        self.assertEqual(seen, [1, 2])
        self.assertEqual(v.sample(), 3)

    def test_watchedRefCounted(self) -> None:
        events: list[str] = []
        updates = []

        def start(update):
            events.append("start")
            updates.append(update)
            update(5)
            return lambda: events.append("stop")

        v = Var.watched(0, start)
        a = v.observe(lambda x: None)
        b = v.observe(lambda x: None)
        self.assertEqual(events, ["start"])
        a.close()
        self.assertEqual(events, ["start"])
        b.close()
        self.assertEqual(events, ["start", "stop"])
        self.assertEqual(v.sample(), 5)
        self.assertEqual(events, ["start", "stop", "start", "stop"])

    def test_map(self) -> None:
        v = Var(2)
        m = v.map(lambda x: x * 10)
        seen: list[int] = []
        c = m.observe(seen.append)
        v.set(3)
        v.set(3)
        c.close()
        self.assertEqual(seen, [20, 30])
        self.assertEqual(m.sample(), 30)

    def test_flatMapSwitches(self) -> None:
        stopped: list[str] = []

        def inner(name: str) -> Var[str]:
            return Var.watched(name, lambda update: lambda: stopped.append(name))

        outer = Var("a")
        flat = outer.flatMap(inner)
        seen: list[str] = []
        c = flat.observe(seen.append)
        outer.set("b")
        self.assertEqual(stopped, ["a"])
        c.close()
        self.assertEqual(stopped, ["a", "b"])
        self.assertEqual(seen, ["a", "b"])


class ActivityTests(SynchronousTestCase):
    def test_states(self) -> None:
        self.assertEqual(Activity.value(1).state, Ok(1))
        self.assertIs(Activity.pending().state, PENDING)
        self.assertEqual(Activity.failed(ValueError("x")).state, Failed(ValueError("x")))

    def test_map(self) -> None:
        self.assertEqual(Activity.value(2).map(lambda x: x + 1).state, Ok(3))
        self.assertIs(Activity.pending().map(lambda x: x).state, PENDING)
        failed = Activity.value(0).map(lambda x: 1 // x).state
        self.assertIsInstance(failed, Failed)

    def test_flatMap(self) -> None:
        a: Activity[int] = Activity.pending()
        b = a.flatMap(lambda x: Activity.value(x * 2))
        seen: list[object] = []
        c = b.observe(seen.append)
        a.var.set(Ok(4))
        a.var.set(Failed(ValueError("boom")))
        c.close()
        self.assertEqual(seen, [PENDING, Ok(8), Failed(ValueError("boom"))])

    def test_whenReady(self) -> None:
        a: Activity[int] = Activity.pending()
        d = a.whenReady()
        self.assertNoResult(d)
        a.var.set(Ok(3))
        self.assertEqual(self.successResultOf(d), 3)
        self.assertEqual(a.var._observers, [])
        f: object = Activity.failed(KeyError("k")).whenReady()
        self.failureResultOf(f, KeyError)

    def test_whenReadyCancel(self) -> None:
        stopped: list[bool] = []
        a: Activity[int] = Activity(Var.watched(PENDING, lambda u: lambda: stopped.append(True)))
        d = a.whenReady()
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(stopped, [True])
