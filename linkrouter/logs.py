# -*- test-case-name: tests.test_logs -*-
"""
The log levels operators change at run time (C{/logging.json}).

Every linkrouter module logs through L{logObserver}: it drops events below
the level set for the event's namespace in L{logLevels} (C{info} by
default), then hands the rest to Twisted's global log publisher, where
twistd's file or stdout observer writes them.
"""

from __future__ import annotations

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
)
from zope.interface import provider

logLevels = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
"""The level of each namespace (C{linkrouter.service}, C{protocols.http}, ...)."""

LOGGERS = ("linkrouter", "protocols")
"""The namespaces C{/logging.json} lists besides the root."""


@provider(ILogObserver)
def _toGlobal(event: LogEvent) -> None:
    globalLogPublisher(event)


logObserver = FilteringLogObserver(_toGlobal, [logLevels])
"""Pass to C{Logger(observer=...)} in every linkrouter module."""
