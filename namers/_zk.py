# -*- test-case-name: tests.test_namers_serversets -*-
"""
L{ZkSession}: one ZooKeeper client (kazoo) used from the reactor thread.

Kazoo runs its own threads; every result, watch event and connection
change is handed to the reactor with C{reactor.callFromThread}, so that
callers only ever see Deferreds firing and callbacks running on the
reactor thread.  The client connects when the first subscriber arrives,
reconnects on its own (with a capped backoff) and is stopped by L{close}.

This module imports kazoo: import it lazily (plugins' C{build}), never
from a dropin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadArgumentsError,
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.protocol.states import EventType, WatchedEvent
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from linkrouter.interfaces import IStatsReceiver
from linkrouter.logs import logObserver

_log = Logger(namespace="linkrouter.namers.zk", observer=logObserver)

Watcher = Callable[[WatchedEvent], None]
"""A watch callback, called on the reactor thread."""

StateListener = Callable[[bool], None]
"""Told C{True} on each (re)connection, C{False} when the connection is lost."""

_DISCONNECTED = (ConnectionLoss, ConnectionClosedError, SessionExpiredError)


def _quietLogger() -> logging.Logger:
    """
    Kazoo logs every failed connection attempt; L{ZkSession} logs one line
    per transition instead.
    """
    logger = logging.getLogger("linkrouter.namers.zk.kazoo")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


class ZkSession:
    """
    A ZooKeeper session shared by the watches of one namer.

    @param hosts: the connect string (C{host:port,host:port}).
    @param reactor: the reactor to deliver results on (and the clock).
    @param stats: receives the C{connected} gauge and the
        C{session_losses} and C{session_expirations} counters.
    @param sessionTimeout: seconds; also how long the first connection may
        take before subscribers are told it failed.
    @param maxRetryDelay: seconds between two connection attempts, at most.
    """

    def __init__(
        self,
        hosts: str,
        reactor: Any,
        stats: IStatsReceiver,
        sessionTimeout: float = 10.0,
        maxRetryDelay: float = 5.0,
    ) -> None:
        self.hosts = hosts
        self.sessionTimeout = sessionTimeout
        self._reactor = reactor
        self._client = KazooClient(
            hosts=hosts,
            timeout=sessionTimeout,
            connection_retry={
                "max_tries": -1,
                "delay": 0.1,
                "backoff": 2,
                "max_delay": maxRetryDelay,
            },
            logger=_quietLogger(),
        )
        self.connected = False
        self.failure: str | None = None
        self._started = False
        self._closed = False
        self._everConnected = False
        self._listeners: list[StateListener] = []
        self._firstConnect: IDelayedCall | None = None
        self._losses = stats.counter("session_losses")
        self._expirations = stats.counter("session_expirations")
        stats.addGauge(("connected",), lambda: 1.0 if self.connected else 0.0)

    # -- connection ----------------------------------------------------------

    def subscribe(self, listener: StateListener) -> Callable[[], None]:
        """
        Call C{listener} on connection changes until the returned callable
        is called; starts the client on first use.  A listener subscribing
        while connected is told C{True} at once.
        """
        self._listeners.append(listener)
        if not self._started and not self._closed:
            self._start()
        elif self.connected:
            listener(True)
        elif self.failure is not None:
            listener(False)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _start(self) -> None:
        self._started = True
        self._client.add_listener(self._kazooListener)
        self._firstConnect = self._reactor.callLater(self.sessionTimeout, self._firstConnectFailed)
        self._client.start_async()

    def _kazooListener(self, state: str) -> None:
        # Kazoo's connection thread: hand over and return None (keep listening).
        self._reactor.callFromThread(self._onState, state)

    def _firstConnectFailed(self) -> None:
        self._firstConnect = None
        self.failure = f"cannot connect to ZooKeeper at {self.hosts}"
        _log.warn(
            "ZooKeeper {hosts}: not connected after {timeout}s; still trying",
            hosts=self.hosts,
            timeout=self.sessionTimeout,
        )
        self._tell(False)

    def _onState(self, state: str) -> None:
        if self._closed:
            return
        if state == KazooState.CONNECTED:
            if self._firstConnect is not None and self._firstConnect.active():
                self._firstConnect.cancel()
            self._firstConnect = None
            self.connected = True
            self.failure = None
            if self._everConnected:
                _log.info("ZooKeeper {hosts}: reconnected; re-syncing", hosts=self.hosts)
            else:
                _log.info("ZooKeeper {hosts}: connected", hosts=self.hosts)
            self._everConnected = True
            self._tell(True)
            return
        wasConnected = self.connected
        self.connected = False
        self.failure = f"lost the connection to ZooKeeper at {self.hosts}"
        if state == KazooState.LOST:
            self._expirations.incr()
            _log.warn(
                "ZooKeeper {hosts}: session expired; serving the last known addresses",
                hosts=self.hosts,
            )
        elif wasConnected:
            self._losses.incr()
            _log.warn(
                "ZooKeeper {hosts}: connection lost; serving the last known addresses",
                hosts=self.hosts,
            )
        self._tell(False)

    def _tell(self, connected: bool) -> None:
        for listener in tuple(self._listeners):
            listener(connected)

    def close(self) -> Deferred[None]:
        """
        Stop the client and its threads (in a thread, as kazoo's C{stop}
        blocks); nothing is delivered afterwards.
        """
        if self._closed:
            return succeed(None)
        self._closed = True
        self.connected = False
        self.failure = "the ZooKeeper client is closed"
        self._listeners.clear()
        if self._firstConnect is not None and self._firstConnect.active():
            self._firstConnect.cancel()
        self._firstConnect = None
        client = self._client

        def stop() -> None:
            client.stop()
            client.close()

        if not self._started:
            return succeed(None)
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), stop)

    # -- reading -------------------------------------------------------------

    def watcher(self, callback: Watcher) -> Watcher:
        """
        A kazoo watch function that runs C{callback} on the reactor thread.
        Register the same one again and again: kazoo keeps one per path.
        """

        def watch(event: WatchedEvent) -> None:
            if not self._closed and event.type != EventType.NONE:
                self._reactor.callFromThread(callback, event)

        return watch

    def _call(self, method: Callable[..., Any], *args: Any) -> Deferred[Any]:
        if self._closed:
            return fail(ConnectionClosedError("the namer is closed"))
        d: Deferred[Any] = Deferred()
        callFromThread = self._reactor.callFromThread

        def done(result: Any) -> None:  # a kazoo thread
            try:
                value = result.get(block=False)
            except Exception:
                callFromThread(d.errback, Failure())
            else:
                callFromThread(d.callback, value)

        try:
            method(*args).rawlink(done)
        except Exception:
            return fail()
        return d

    @inlineCallbacks
    def children(self, path: str, watch: Watcher) -> Any:
        """
        The child names of C{path} (a Deferred), watched with C{watch}; or
        C{None} if C{path} does not exist (or cannot), with C{watch} set
        to learn when it is created.
        """
        for _ in range(3):
            try:
                return (yield self._call(self._client.get_children_async, path, watch))
            except NoNodeError:
                pass
            except (ValueError, BadArgumentsError):
                return None
            if (yield self._call(self._client.exists_async, path, watch)) is None:
                return None
        return None

    @inlineCallbacks
    def data(self, path: str, watch: Watcher) -> Any:
        """The data of C{path} (a Deferred), watched; C{None} if it is gone."""
        try:
            data, _ = yield self._call(self._client.get_async, path, watch)
        except NoNodeError:
            return None
        return data

    @staticmethod
    def isDisconnection(failure: Failure) -> bool:
        """Whether C{failure} only means the connection is (being) lost."""
        return failure.check(*_DISCONNECTED) is not None
