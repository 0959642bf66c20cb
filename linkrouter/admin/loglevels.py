# -*- test-case-name: tests.test_admin_server -*-
"""
C{/logging.json}: read and change log levels at run time.

C{GET} lists C{[{"logger": name, "level": LEVEL}, ...]} (the root logger is
called C{root}).  C{POST logger=<name>&level=<LEVEL>} (query or form) sets
one; for Linkerd compatibility a C{GET} carrying both parameters does too.
Levels are Linkerd's names (C{ALL TRACE DEBUG INFO WARNING ERROR CRITICAL
FATAL}); Twisted has five levels, so C{ALL} and C{TRACE} mean C{DEBUG} and
C{FATAL} means C{CRITICAL}.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.logger import Logger, LogLevel, LogLevelFilterPredicate
from twisted.web.resource import Resource
from twisted.web.server import Request

from linkrouter.logs import logObserver

from ._resources import arg, jsonBody, textBody

_log = Logger(observer=logObserver)

_LEVELS = {
    "ALL": LogLevel.debug,
    "TRACE": LogLevel.debug,
    "DEBUG": LogLevel.debug,
    "INFO": LogLevel.info,
    "WARNING": LogLevel.warn,
    "WARN": LogLevel.warn,
    "ERROR": LogLevel.error,
    "CRITICAL": LogLevel.critical,
    "FATAL": LogLevel.critical,
}
_NAMES = {
    LogLevel.debug: "DEBUG",
    LogLevel.info: "INFO",
    LogLevel.warn: "WARNING",
    LogLevel.error: "ERROR",
    LogLevel.critical: "CRITICAL",
}
ROOT = "root"


class LoggingResource(Resource):
    """
    @param levels: the predicate of the process's log filter.
    @param loggers: namespaces to list besides the root and those changed
        through this endpoint.
    """

    isLeaf = True

    def __init__(self, levels: LogLevelFilterPredicate, loggers: Iterable[str] = ()) -> None:
        super().__init__()
        self._levels = levels
        self._loggers = {name for name in loggers if name}

    def render_GET(self, request: Request) -> bytes:
        if arg(request, "logger") is not None and arg(request, "level") is not None:
            return self.render_POST(request)
        names = [ROOT, *sorted(self._loggers)]
        listing = [
            {"logger": name, "level": _NAMES[self._levels.logLevelForNamespace(self._ns(name))]}
            for name in names
        ]
        return jsonBody(request, listing)

    def render_POST(self, request: Request) -> bytes:
        logger, levelName = arg(request, "logger"), arg(request, "level")
        if not logger or not levelName:
            return textBody(request, "Both logger and level are required", 400)
        level = _LEVELS.get(levelName.upper())
        if level is None:
            return textBody(
                request, f"Unknown level {levelName!r}; one of {', '.join(_LEVELS)}", 400
            )
        self._levels.setLogLevelForNamespace(self._ns(logger), level)
        if logger != ROOT:
            self._loggers.add(logger)
        _log.info("log level of {logger} set to {newLevel}", logger=logger, newLevel=_NAMES[level])
        return jsonBody(request, {"logger": logger, "level": _NAMES[level]})

    @staticmethod
    def _ns(name: str) -> str:
        return "" if name == ROOT else name
