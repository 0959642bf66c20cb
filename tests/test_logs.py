"""
Tests for L{linkrouter.logs}: run-time log levels per namespace.
"""

from __future__ import annotations

from twisted.logger import ILogObserver, Logger, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import provider

from linkrouter.logs import logLevels, logObserver


class LogLevelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.events: list[dict[str, object]] = []

        @provider(ILogObserver)
        def observer(event: dict[str, object]) -> None:
            self.events.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.addCleanup(logLevels.clearLogLevels)

    def messages(self) -> list[object]:
        return [e.get("log_format") for e in self.events if e.get("log_namespace") == "x.y"]

    def test_infoByDefault(self) -> None:
        """
        Events at C{info} and above reach the global publisher; C{debug} is
        dropped.
        """
        log = Logger(namespace="x.y", observer=logObserver)
        log.debug("quiet")
        log.info("loud")
        self.assertEqual(self.messages(), ["loud"])

    def test_levelPerNamespace(self) -> None:
        """
        Setting a namespace's level (as C{POST /logging.json} does) applies
        to it and the namespaces below it.
        """
        log = Logger(namespace="x.y", observer=logObserver)
        logLevels.setLogLevelForNamespace("x", LogLevel.debug)
        log.debug("now heard")
        logLevels.setLogLevelForNamespace("x", LogLevel.error)
        log.warn("now dropped")
        self.assertEqual(self.messages(), ["now heard"])
