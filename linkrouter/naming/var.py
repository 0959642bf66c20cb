# -*- test-case-name: tests.test_naming_var -*-
"""
Observable values: L{Var} (a value that changes) and L{Activity} (a L{Var}
of C{PENDING | Ok(value) | Failed(exception)}).

Observation is reference-counted: a L{Var.watched} source is started when
its first observer arrives and stopped when its last observer leaves.
Updates equal to the current value are not propagated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")
U = TypeVar("U")

Start = Callable[[Callable[[T], None]], Callable[[], object]]
"""A L{Var.watched} source: C{start(update) -> stop}."""

_UNSET: Any = object()


class Closable:
    """
    A handle that undoes something when closed; closing twice is harmless.
    """

    __slots__ = ("_onClose",)

    def __init__(self, onClose: Callable[[], object] | None = None) -> None:
        self._onClose = onClose

    def close(self) -> None:
        onClose = self._onClose
        if onClose is not None:
            self._onClose = None
            onClose()


class _Observation(Closable, Generic[T]):
    __slots__ = ("callback", "var")

    def __init__(self, var: Var[T], callback: Callable[[T], object]) -> None:
        self.var: Var[T] | None = var
        self.callback = callback
        self._onClose = None

    def close(self) -> None:
        var = self.var
        if var is not None:
            self.var = None
            var._release(self)


class Var(Generic[T]):
    """
    An observable value.

    C{Var(initial)} is set with L{set}; C{Var.watched(initial, start)} is
    driven by a source that runs only while the variable is observed.
    """

    __slots__ = ("_observers", "_start", "_stop", "_value")

    def __init__(self, initial: T) -> None:
        self._value = initial
        self._observers: list[_Observation[T]] = []
        self._start: Start[T] | None = None
        self._stop: Callable[[], object] | None = None

    @classmethod
    def watched(cls, initial: T, start: Start[T]) -> Var[T]:
        """
        A variable whose value comes from C{start(update)}, called when the
        first observer arrives; the callable it returns is called when the
        last observer leaves.
        """
        var = cls(initial)
        var._start = start
        return var

    def __repr__(self) -> str:
        return f"Var({self._value!r})"

    def sample(self) -> T:
        """
        The current value.  An unobserved watched variable is observed
        briefly so that its source can supply a fresh value.
        """
        if self._start is not None and not self._observers:
            self.observe(_ignore).close()
        return self._value

    def set(self, value: T) -> None:
        """
        Change the value and notify observers, unless C{value} equals the
        current value.
        """
        old = self._value
        if value is old or value == old:
            return
        self._value = value
        for obs in tuple(self._observers):
            if self._value is not value:
                # A re-entrant set() already told everybody something newer.
                return
            if obs.var is not None:
                obs.callback(value)

    def observe(self, callback: Callable[[T], object]) -> Closable:
        """
        Call C{callback} now with the current value and then on each change,
        until the returned L{Closable} is closed.
        """
        if not self._observers and self._start is not None and self._stop is None:
            self._stop = self._start(self.set)
        obs = _Observation(self, callback)
        self._observers.append(obs)
        callback(self._value)
        return obs

    def _release(self, obs: _Observation[T]) -> None:
        self._observers.remove(obs)
        if not self._observers:
            stop = self._stop
            if stop is not None:
                self._stop = None
                stop()

    def map(self, f: Callable[[T], U]) -> Var[U]:
        """
        A variable holding C{f(value)}, observing this one while observed.
        """

        def start(update: Callable[[U], None]) -> Callable[[], None]:
            return self.observe(lambda v: update(f(v))).close

        return Var.watched(cast(U, _UNSET), start)

    def flatMap(self, f: Callable[[T], Var[U]]) -> Var[U]:
        """
        A variable holding the value of C{f(value)}; when this variable
        changes, the observation of the previous inner variable is
        released.
        """

        def start(update: Callable[[U], None]) -> Callable[[], None]:
            inner: list[Closable | None] = [None]

            def onOuter(v: T) -> None:
                old = inner[0]
                inner[0] = f(v).observe(update)
                if old is not None:
                    old.close()

            outer = self.observe(onOuter)

            def stop() -> None:
                outer.close()
                current = inner[0]
                if current is not None:
                    inner[0] = None
                    current.close()

            return stop

        return Var.watched(cast(U, _UNSET), start)


def _ignore(value: object) -> None:
    pass


class Pending:
    """The state of an L{Activity} that has no value yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = Pending()


class Ok(Generic[T]):
    """The state of an L{Activity} that has a value."""

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Ok and (self.value is other.value or self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Ok({self.value!r})"


class Failed:
    """
    The state of an L{Activity} that failed.  Two failures are equal when
    their exceptions have the same type and arguments.
    """

    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception

    def __eq__(self, other: object) -> bool:
        if type(other) is not Failed:
            return False
        a, b = self.exception, other.exception
        return a is b or (type(a) is type(b) and a.args == b.args)

    def __hash__(self) -> int:
        return hash((type(self.exception), self.exception.args))

    def __repr__(self) -> str:
        return f"Failed({self.exception!r})"


State = Pending | Ok[T] | Failed
"""The value of an L{Activity}'s variable."""


class Activity(Generic[T]):
    """
    A L{Var} of L{State}: something that is pending, has a value, or
    failed, and may change.
    """

    __slots__ = ("var",)

    def __init__(self, var: Var[State[T]]) -> None:
        self.var = var

    @classmethod
    def value(cls, value: T) -> Activity[T]:
        return cls(Var(Ok(value)))

    @classmethod
    def failed(cls, exception: BaseException) -> Activity[T]:
        return cls(Var(Failed(exception)))

    @classmethod
    def pending(cls) -> Activity[T]:
        return cls(Var(PENDING))

    def __repr__(self) -> str:
        return f"Activity({self.var!r})"

    @property
    def state(self) -> State[T]:
        return self.var.sample()

    def observe(self, callback: Callable[[State[T]], object]) -> Closable:
        return self.var.observe(callback)

    def map(self, f: Callable[[T], U]) -> Activity[U]:
        """
        Apply C{f} to the value; an exception raised by C{f} becomes a
        L{Failed} state.
        """

        def mapState(state: State[T]) -> State[U]:
            if type(state) is Ok:
                try:
                    return Ok(f(state.value))
                except Exception as e:
                    return Failed(e)
            return cast("State[U]", state)

        return Activity(self.var.map(mapState))

    def flatMap(self, f: Callable[[T], Activity[U]]) -> Activity[U]:
        """
        Follow the activity C{f(value)}; pending and failed states pass
        through.
        """

        def mapState(state: State[T]) -> Var[State[U]]:
            if type(state) is Ok:
                try:
                    return f(state.value).var
                except Exception as e:
                    return Var(Failed(e))
            return Var(cast("State[U]", state))

        return Activity(self.var.flatMap(mapState))

    def whenReady(self) -> Deferred[T]:
        """
        A Deferred that fires with the first value, or fails with the first
        exception, this activity settles on.  Cancelling it stops watching.
        """
        handle: list[Closable | None] = [None]
        settled = [False]

        def release() -> None:
            closable = handle[0]
            if closable is not None:
                handle[0] = None
                closable.close()

        d: Deferred[T] = Deferred(lambda _: release())

        def onState(state: State[T]) -> None:
            if settled[0] or type(state) is Pending:
                return
            settled[0] = True
            release()
            if type(state) is Ok:
                d.callback(state.value)
            else:
                d.errback(Failure(cast(Failed, state).exception))

        handle[0] = self.observe(onState)
        if settled[0]:
            release()
        return d
