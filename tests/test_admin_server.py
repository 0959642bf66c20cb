"""
Tests for L{linkrouter.admin.makeAdminSite}: every endpoint in memory, and
one real loopback server queried with treq.
"""

import json
from collections.abc import Callable
from typing import Any, cast

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Cooperator
from twisted.logger import LogLevel, LogLevelFilterPredicate
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from linkrouter.admin import AdminSecurity, compilePatterns, makeAdminSite
from linkrouter.telemetry import MetricsRegistry

from ._admin_helpers import AdminHarness


class _Hello(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"hello"


class _Turn:
    def cancel(self):
        pass


class BasicEndpointTests(SynchronousTestCase):
    def test_ping(self):
        harness = AdminHarness()
        response = harness.get("/admin/ping")
        self.assertEqual((response.code, response.text), (200, "pong"))
        posted = harness.request("POST", "/admin/ping")  # any method, as TwitterServer
        self.assertEqual((posted.code, posted.text), (200, "pong"))

    def test_index(self):
        """
        C{/admin} lists the served endpoints, one per line, including
        those added by telemeters.
        """
        harness = AdminHarness(resources={"admin/metrics/influxdb": _Hello()})
        paths = harness.get("/admin").text.splitlines()
        for path in [
            "/admin/ping",
            "/admin/metrics.json",
            "/admin/metrics/prometheus",
            "/admin/metrics/influxdb",
            "/config.json",
            "/delegator.json",
            "/bound-names.json",
            "/admin/server_info",
            "/client_state.json",
        ]:
            self.assertIn(path, paths)
        self.assertNotIn("/admin/shutdown", paths)
        self.assertEqual(harness.get("/admin/index.txt").text.splitlines(), paths)
        self.assertEqual(harness.get("/admin/metrics/influxdb").text, "hello")

    def test_unknownPath(self):
        harness = AdminHarness()
        self.assertEqual(harness.get("/admin/nope").code, 404)
        self.assertEqual(harness.get("/admin/ping/").text, "pong")
        self.assertEqual(harness.get("/admin/%70ing").code, 404)

    def test_wrongMethod(self):
        self.assertEqual(AdminHarness().request("POST", "/config.json").code, 405)

    def test_config(self):
        config = {"admin": {"port": 9990}, "routers": [{"protocol": "http"}]}
        response = AdminHarness(config=config).get("/config.json")
        self.assertEqual(response.headers["content-type"], "application/json")
        self.assertEqual(response.json(), config)

    def test_serverInfo(self):
        harness = AdminHarness(serverInfo={"build": "abc"})
        harness.clock.advance(2.5)
        info = harness.get("/admin/server_info").json()
        self.assertEqual((info["name"], info["build"], info["uptime"]), ("linkrouter", "abc", 2500))
        self.assertIn("version", info)

    def test_shutdown(self):
        """
        C{POST /admin/shutdown} answers, then calls the shutdown callable
        on the next reactor turn; GET is refused.
        """
        calls = []
        harness = AdminHarness(shutdown=lambda: calls.append(1))
        self.assertEqual(harness.get("/admin/shutdown").code, 405)
        self.assertEqual(calls, [])
        response = harness.request("POST", "/admin/shutdown")
        self.assertEqual((response.code, response.text, calls), (200, "quitting\n", [1]))

    def test_shutdownGrace(self):
        """
        C{grace} in Finagle's duration format replaces the configured grace
        for this stop; one that does not parse is refused, and nothing stops.
        """
        graces: list[float] = []
        harness = AdminHarness(shutdown=graces.append)
        bad = harness.request("POST", "/admin/shutdown?grace=soon")
        self.assertEqual(bad.code, 400)
        self.assertIn("soon is not a valid duration", bad.text)
        self.assertEqual(graces, [])
        ok = harness.request("POST", "/admin/shutdown?grace=1.minute%2B500.milliseconds")
        self.assertEqual((ok.code, graces), (200, [60.5]))

    def test_parseDuration(self):
        from linkrouter.admin.server import parseDuration

        self.assertEqual(parseDuration("5.seconds"), 5.0)
        self.assertEqual(parseDuration("1.second"), 1.0)
        self.assertEqual(parseDuration("250.milliseconds"), 0.25)
        self.assertEqual(parseDuration("2.minutes+3.seconds"), 123.0)
        for bad in ("5", "seconds", "1.5.seconds", "-1.seconds", "5.fortnights", ""):
            self.assertIsNone(parseDuration(bad), bad)

    def test_clientStateDeferred(self):
        state: Deferred[object] = Deferred()
        harness = AdminHarness(clientState=lambda: state)
        _, transport = harness.start("GET", "/client_state.json")
        harness.pump()
        self.assertEqual(transport.value(), b"")
        state.callback({"http": {"$/inet/127.1/9990": {"state": "open"}}})
        response = harness.parse(transport.value())
        self.assertEqual(response.json()["http"]["$/inet/127.1/9990"]["state"], "open")

    def test_boundNames(self):
        harness = AdminHarness(boundNames=lambda: succeed({"/#/io.l5d.fs/b", "/#/io.l5d.fs/a"}))
        self.assertEqual(
            harness.get("/bound-names.json").json(), ["/#/io.l5d.fs/a", "/#/io.l5d.fs/b"]
        )

    def test_providerTimesOut(self):
        harness = AdminHarness(boundNames=Deferred)
        response = harness.request("GET", "/bound-names.json", wait=2.0)
        self.assertEqual((response.code, response.text), (503, "Request timed out."))

    def test_providerFails(self):
        harness = AdminHarness(clientState=lambda: 1 / 0)
        response = harness.get("/client_state.json")
        self.assertEqual(response.code, 500)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class MetricsEndpointTests(SynchronousTestCase):
    def setUp(self):
        self.harness = AdminHarness()
        stats = self.harness.registry.statsReceiver()
        self.stats = stats
        stats.scope("rt", "http", "server", "127.0.0.1/4140").counter("requests").incr(3)
        stats.scope("rt", "http", "service", "svc/foo").histogram("request_latency_ms").add(7)
        self.harness.registry.snapshot()

    def test_metricsJson(self):
        metrics = self.harness.get("/admin/metrics.json").json()
        self.assertEqual(metrics["rt/http/server/127.0.0.1/4140/requests"], 3)
        self.assertEqual(metrics["rt/http/service/svc/foo/request_latency_ms.p99"], 7)

    def test_metricsJsonOptions(self):
        tree = self.harness.get("/admin/metrics.json?tree=1").json()
        self.assertEqual(tree["rt"]["http"]["server"]["127.0.0.1/4140"]["requests"]["counter"], 3)
        sub = self.harness.get("/admin/metrics.json?q=rt/http/server&pretty=true")
        self.assertEqual(sub.json(), {"127.0.0.1/4140/requests": 3})
        subtree = self.harness.get("/admin/metrics.json?q=rt/http/server&tree=1").json()
        self.assertEqual(subtree, {"127.0.0.1/4140": {"requests": {"counter": 3}}})
        missing = self.harness.get("/admin/metrics.json?q=nope")
        self.assertEqual((missing.code, missing.json()), (200, {}))
        missingTree = self.harness.get("/admin/metrics.json?q=nope&tree=1")
        self.assertEqual((missingTree.code, missingTree.json()), (200, {}))

    def test_prometheus(self):
        response = self.harness.get("/admin/metrics/prometheus")
        self.assertTrue(response.headers["content-type"].startswith("text/plain; version=0.0.4"))
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }
        key = ("rt:server:requests", (("rt", "http"), ("server", "127.0.0.1/4140")))
        self.assertEqual(samples[key], 3)

    def test_streamedAcrossReactorTurns(self):
        """
        A large body is written over several reactor turns, and a client
        that leaves stops the work.
        """
        for n in range(2000):
            self.stats.counter("many", str(n)).incr()
        turns: list[Callable[[], None]] = []

        def schedule(step: Callable[[], None]) -> Any:
            turns.append(step)
            return _Turn()

        def runTurns(n=1000):
            for _ in range(n):
                if turns:
                    turns.pop(0)()

        oneStepPerTurn = Cooperator(
            terminationPredicateFactory=lambda: lambda: True,
            scheduler=schedule,
        )
        self.harness.site.resource.routes["/admin/metrics.json"]._cooperator = oneStepPerTurn
        _, transport = self.harness.start("GET", "/admin/metrics.json")
        runTurns(2)
        self.assertTrue(transport.value().startswith(b"HTTP/1.0 200"))
        self.assertFalse(transport.value().endswith(b"}"))
        runTurns()
        body = self.harness.parse(transport.value()).json()
        self.assertEqual(len(body), 2000 + 1 + 11)

        protocol, transport = self.harness.start("GET", "/admin/metrics.json")
        runTurns(2)
        protocol.connectionLost(Failure(ConnectionDone()))
        runTurns()
        self.assertEqual(turns, [])
        self.assertEqual(self.flushLoggedErrors(), [])


class LoggingEndpointTests(SynchronousTestCase):
    def setUp(self):
        self.levels = LogLevelFilterPredicate(LogLevel.info)
        self.harness = AdminHarness(logLevels=self.levels, loggers=["linkrouter"])

    def test_list(self):
        self.assertEqual(
            self.harness.get("/logging.json").json(),
            [{"logger": "root", "level": "INFO"}, {"logger": "linkrouter", "level": "INFO"}],
        )

    def test_set(self):
        response = self.harness.request(
            "POST", "/logging.json?logger=linkrouter.naming&level=trace"
        )
        self.assertEqual(response.json(), {"logger": "linkrouter.naming", "level": "DEBUG"})
        self.assertEqual(self.levels.logLevelForNamespace("linkrouter.naming.x"), LogLevel.debug)
        self.harness.get("/logging.json?logger=root&level=ERROR")
        self.assertEqual(self.levels.logLevelForNamespace("other"), LogLevel.error)
        loggers = {e["logger"]: e["level"] for e in self.harness.get("/logging.json").json()}
        self.assertEqual(loggers["linkrouter.naming"], "DEBUG")

    def test_setForm(self):
        response = self.harness.request(
            "POST",
            "/logging.json",
            body=b"logger=twisted&level=WARNING",
            headers=[("Content-Type", "application/x-www-form-urlencoded")],
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(self.levels.logLevelForNamespace("twisted"), LogLevel.warn)

    def test_badRequests(self):
        bad = self.harness.request("POST", "/logging.json?logger=x&level=LOUD")
        self.assertEqual(bad.code, 400)
        self.assertIn("Unknown level 'LOUD'", bad.text)
        self.assertEqual(self.harness.request("POST", "/logging.json?level=INFO").code, 400)


class SecurityIntegrationTests(SynchronousTestCase):
    def test_controlDisabled(self):
        calls = []
        harness = AdminHarness(
            shutdown=lambda: calls.append(1),
            logLevels=LogLevelFilterPredicate(),
            security=AdminSecurity(controlEnabled=False),
        )
        self.assertEqual(harness.request("POST", "/admin/shutdown").code, 404)
        self.assertEqual(harness.get("/logging.json").code, 404)
        self.assertEqual(calls, [])
        self.assertNotIn("/admin/shutdown", harness.get("/admin").text)

    def test_diagnosticsDisabledWithWhitelist(self):
        harness = AdminHarness(
            security=AdminSecurity(
                diagnosticsEnabled=False, pathWhitelist=compilePatterns(["/admin/ping"])
            )
        )
        self.assertEqual(harness.get("/admin/ping").code, 200)
        self.assertEqual(harness.get("/admin/metrics/prometheus").code, 404)
        self.assertEqual(harness.get("/admin/metrics.json").code, 200)

    def test_blacklist(self):
        harness = AdminHarness(security=AdminSecurity(pathBlacklist=compilePatterns(["/config.*"])))
        self.assertEqual(harness.get("/config.json").code, 404)
        self.assertEqual(harness.get("/admin/ping").code, 200)


class LoopbackTests(TestCase):
    """The site served on a real socket."""

    def setUp(self):
        self.registry = MetricsRegistry(reactor)
        self.registry.statsReceiver().scope("rt", "http").counter("requests").incr(5)
        site = makeAdminSite(self.registry, reactor)
        self.port: Any = reactor.listenTCP(0, cast(Any, site), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.base = f"http://127.0.0.1:{cast(Any, self.port.getHost()).port}"

    async def test_prometheus(self):
        response = await treq.get(self.base + "/admin/metrics/prometheus", persistent=False)
        text = (await response.content()).decode()
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        self.assertEqual(
            [(s.name, s.labels, s.value) for s in samples], [("rt:requests", {"rt": "http"}, 5.0)]
        )

    async def test_metricsJson(self):
        response = await treq.get(self.base + "/admin/metrics.json", persistent=False)
        self.assertEqual(json.loads(await response.content()), {"rt/http/requests": 5})
