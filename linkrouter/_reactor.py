# -*- test-case-name: tests.test_reactor -*-
"""
The reactor C{twistd linkrouter} runs on: Twisted's epoll reactor, minus
one cost on the data path, plus the end-of-turn flush of held writes.

Twisted's reactors run each I/O event inside C{log.callWithLogger}, which
pushes the selectable's C{logPrefix()} as the legacy log context and pops
it again: four Python frames and two dictionary copies per event, 6 to 8%
of a proxied request's CPU time in our profiles.  The context only names the
C{system} of legacy C{twisted.python.log.msg} lines; linkrouter logs
through C{twisted.logger} with namespaces instead, and
C{_doReadOrWrite} already catches and logs whatever an event raises.  So
L{EPollReactor} dispatches events directly, then sends what the turn's
events wrote (L{linkrouter._transport.flush}).  What timed calls wrote (a
retry after its backoff, a timeout's answer) it sends before waiting for
the next events, so it never waits for them.  Everything else is Twisted's.

L{install} is called by the service maker before anything imports
C{twisted.internet.reactor}; when a reactor is already installed (for
example by C{twistd --reactor=...}), that one is kept.
"""

from __future__ import annotations

import errno
import sys

from twisted.internet import epollreactor
from twisted.internet.main import installReactor

from linkrouter._transport import _held, flush


class EPollReactor(epollreactor.EPollReactor):
    """
    Twisted's epoll reactor, dispatching events without the log context
    and flushing held writes after each turn's events.
    """

    flushesHeldWrites = True

    def doPoll(self, timeout: float | None) -> None:
        if _held:
            flush()  # written by timed calls, which ran just before: send before waiting
        try:
            events = self._poller.poll(-1 if timeout is None else timeout, len(self._selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        selectables = self._selectables
        dispatch = self._doReadOrWrite
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is not None:
                dispatch(selectable, fd, event)
        if _held:
            flush()

    doIteration = doPoll


def install() -> bool:
    """
    Install L{EPollReactor} as the global reactor unless one is installed
    already; say whether it was.
    """
    if "twisted.internet.reactor" in sys.modules:
        return False
    installReactor(EPollReactor())
    return True
