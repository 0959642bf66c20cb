"""
Tests for Linkerd's top-level schema (L{linkrouter.config.parseLinkerConfig})
and client/service policies, with the out-of-tree fixture plugins.
"""

from __future__ import annotations

import io
import os

from twisted.trial.unittest import SynchronousTestCase

from linkrouter.config import (
    ConfigError,
    PrefixPattern,
    loadLinkerConfig,
)
from linkrouter.naming import Dtab, Path
from tests._config import ConfigCase

MINIMAL = """
routers:
- protocol: test.line
  interpreter: {kind: test.configured}
"""


class LinkerTests(ConfigCase):
    def test_defaults(self) -> None:
        config = self.parse(MINIMAL)
        self.assertEqual((config.admin.ip, config.admin.port), ("0.0.0.0", 9990))
        self.assertEqual(config.admin.shutdownGraceMs, 10000)
        [router] = config.routers
        self.assertEqual(router.label, "test.line")
        self.assertEqual(router.dstPrefix, Path.of("svc"))
        self.assertEqual(router.dtab, Dtab.empty())
        self.assertEqual(router.bindingTimeoutMs, 10000)
        self.assertEqual(router.bindingCache.paths, 1000)
        self.assertFalse(router.originator)
        [server] = router.servers
        self.assertEqual((server.ip, server.port), ("127.0.0.1", 4199))
        self.assertEqual(router.protocolConfig, "hello")
        self.assertEqual(router.interpreter.plugin.plugin.kind, "test.configured")  # type: ignore[union-attr]
        params = router.client.forPath(Path.read("/#/x/y"))
        self.assertIs(params.failFast, False)
        self.assertEqual(params.requeueBudget.percentCanRetry, 0.2)  # type: ignore[union-attr]
        self.assertIsNone(params.loadBalancer)  # no p2c plugin installed here
        self.assertIsNone(router.service.forPath(Path.read("/svc/a")).totalTimeoutMs)

    def test_full(self) -> None:
        config = self.parse(
            """
admin: {ip: 127.0.0.1, port: 9991, shutdownGraceMs: 50}
usage: {orgId: me, enabled: false}
namers:
- kind: test.static
  names: {a: ["127.0.0.1:1"]}
- kind: test.static
  prefix: /other
routers:
- protocol: test.line
  label: one
  greeting: hi
  dtab: /svc => /#/test.static;
  dstPrefix: /lines
  bindingTimeoutMs: 500
  originator: true
  interpreter: {kind: test.configured}
  servers:
  - {port: 0, ip: "::1", maxConcurrentRequests: 5, clearContext: true,
     socketOptions: {noDelay: false, backlog: 10}, serverSession: {idleTimeMs: 5}}
"""
        )
        self.assertEqual(config.admin.port, 9991)
        self.assertEqual([n.prefix.show for n in config.namers], ["/test.static", "/other"])
        [router] = config.routers
        self.assertEqual(router.label, "one")
        self.assertEqual(router.protocolConfig, "hi")
        self.assertEqual(router.dstPrefix.show, "/lines")
        self.assertEqual(router.dtab.show, "/svc=>/#/test.static")
        [server] = router.servers
        self.assertEqual(
            (server.ip, server.maxConcurrentRequests, server.clearContext), ("::1", 5, True)
        )
        self.assertEqual((server.socketOptions.noDelay, server.socketOptions.backlog), (False, 10))
        self.assertEqual(server.serverSession.idleTimeMs, 5)
        self.assertEqual(config.source["admin"]["port"], 9991)

    def test_problemsAllAtOnce(self) -> None:
        found = self.problems(
            """
admin: {port: 99999}
routers:
- protocol: test.line
  dtab: "/svc => "
  dstPrefx: /x
  servers: [{port: "x", ip: nowhere}]
- protocol: h2
  servers: [{port: 1}]
"""
        )
        self.assertEqual(
            found,
            [
                "l.yaml:2:15: admin.port: must be a port number (0-65535)",
                "l.yaml:5:9: routers[0].dtab: not a dtab: " + found[1].split("not a dtab: ")[1],
                "l.yaml:6:3: routers[0].dstPrefx: unknown key (did you mean 'dstPrefix'?)",
                "l.yaml:7:20: routers[0].servers[0].port: expected an integer, got a string",
                "l.yaml:7:29: routers[0].servers[0].ip: 'nowhere' is not an IP address"
                " or a host name that resolves: " + found[4].split("resolves: ")[1],
                "l.yaml:8:13: routers[1].protocol: protocol 'h2' is not supported"
                " (supported: test.line)",
            ],
        )

    def test_hostNames(self) -> None:
        """Like Linkerd's InetAddress keys, C{ip} takes a name, resolved at once."""
        config = self.parse(MINIMAL + "  servers: [{ip: localhost}]\nadmin: {ip: localhost}\n")
        self.assertEqual(config.routers[0].servers[0].ip, "127.0.0.1")
        self.assertEqual(config.admin.ip, "127.0.0.1")

    def test_requiredRouters(self) -> None:
        self.assertEqual(
            self.problems("admin: {}\n"), ["l.yaml:1:1: routers: required key is missing"]
        )

    def test_namerd(self) -> None:
        [line] = self.problems("storage: {kind: io.l5d.inMemory}\ninterfaces: []\n")
        self.assertIn("namerd configuration", line)
        self.assertIn("not supported", line)

    def test_kubernetesResource(self) -> None:
        """A Kubernetes manifest (namerd's k8s storage ships one) gets one problem."""
        [line] = self.problems("kind: CustomResourceDefinition\napiVersion: v1\nspec: {}\n")
        self.assertIn("Kubernetes resource (kind CustomResourceDefinition)", line)
        self.assertIn("not supported", line)

    def test_duplicates(self) -> None:
        found = self.problems(
            """
admin: {port: 4140}
namers:
- {kind: test.static}
- {kind: test.static}
routers:
- {protocol: test.line, label: a, servers: [{port: 4140}]}
- {protocol: test.line, label: a, servers: [{port: 5000, ip: 0.0.0.0}, {port: 5000}]}
"""
        )
        self.assertEqual(
            [line.split(": ", 1)[1] for line in found],
            [
                "namers[1].prefix: /test.static is already used by namers[0]",
                "routers[0].servers[0].port: 127.0.0.1:4140 is also used by the admin server",
                "routers[1].label: label 'a' is already used by routers[0]",
                "routers[1].servers[1].port: 127.0.0.1:5000 is also used by routers[1].servers[0]",
            ],
        )

    def test_announcersRefused(self) -> None:
        """
        Announcers are refused as not supported; TLS parses (its files are
        read when the router is built).
        """
        [line] = self.problems(
            """
routers:
- protocol: test.line
  announcers: [{kind: io.l5d.serversets}]
  servers: [{port: 1, tls: {certPath: /c, keyPath: /k}}]
  client: {tls: {commonName: foo}}
"""
        )
        self.assertIn("not supported", line)
        self.assertIn("announcers", line)

    def test_unknownInterpreterAndDefaultMissing(self) -> None:
        [line] = self.problems(
            "routers: [{protocol: test.line, interpreter: {kind: io.l5d.namerd, dst: /x}}]"
        )
        self.assertIn(
            "Interpreter kind 'io.l5d.namerd' is not supported (supported: test.configured)", line
        )
        config = self.parse("routers: [{protocol: test.line}]")
        self.assertIsNone(config.routers[0].interpreter.plugin)

    def test_staticClient(self) -> None:
        config = self.parse(
            """
routers:
- protocol: test.line
  client:
    kind: io.l5d.static
    configs:
    - prefix: /
      requestAttemptTimeoutMs: 1000
      failFast: true
    - prefix: /#/io.l5d.fs/cat
      hostConnectionPool: {maxSize: 10}
      failFast: false
    - prefix: "/#/*/{service}"
      requestAttemptTimeoutMs: 5
"""
        )
        client = config.routers[0].client
        cat = client.forPath(Path.read("/#/io.l5d.fs/cat"))
        self.assertEqual((cat.requestAttemptTimeoutMs, cat.failFast), (5, False))
        self.assertEqual(cat.hostConnectionPool.maxSize, 10)  # type: ignore[union-attr]
        other = client.forPath(Path.read("/$/inet/h/1"))
        self.assertEqual((other.requestAttemptTimeoutMs, other.failFast), (1000, True))
        self.assertIsNone(other.hostConnectionPool.maxSize)  # type: ignore[union-attr]

    def test_staticService(self) -> None:
        config = self.parse(
            """
routers:
- protocol: test.line
  service:
    kind: io.l5d.static
    configs:
    - prefix: /svc
      totalTimeoutMs: 500
    - prefix: /svc/bar
      retries:
        budget: {minRetriesPerSec: 0, percentCanRetry: 0.5, ttlSecs: 15}
        backoff: {kind: jittered, minMs: 10, maxMs: 10000}
"""
        )
        service = config.routers[0].service
        bar = service.forPath(Path.read("/svc/bar/x"))
        self.assertEqual(bar.totalTimeoutMs, 500)
        self.assertEqual(bar.retries.budget.minRetriesPerSec, 0)  # type: ignore[union-attr]
        self.assertEqual(bar.retries.backoff.maxMs, 10000)  # type: ignore[union-attr]
        foo = service.forPath(Path.read("/svc/foo"))
        self.assertEqual(foo.retries.backoff.kind, "constant")  # type: ignore[union-attr]

    def test_policyProblems(self) -> None:
        found = self.problems(
            """
routers:
- protocol: test.line
  client: {kind: io.l5d.weird}
  service:
    kind: io.l5d.static
    configs:
    - {prefix: "svc", retries: {backoff: {kind: jittered, minMs: 5}}}
    - {totalTimeoutMs: -1}
"""
        )
        self.assertEqual(
            [line.split(": ", 1)[1] for line in found],
            [
                "routers[0].client.kind: kind 'io.l5d.weird' is not supported"
                " (supported: io.l5d.global, io.l5d.static)",
                "routers[0].service.configs[0].prefix: a prefix must start with '/'",
                "routers[0].service.configs[0].retries.backoff.maxMs: required key is missing",
                "routers[0].service.configs[1].prefix: required key is missing",
                "routers[0].service.configs[1].totalTimeoutMs: must not be negative",
            ],
        )

    def test_loadFromFileAndStdin(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(MINIMAL)
        self.assertEqual(len(loadLinkerConfig(path, self.registry).routers), 1)
        config = loadLinkerConfig(
            "-", self.registry, io.BytesIO(b'{"routers": [{"protocol": "test.line"}]}')
        )
        self.assertEqual(config.routers[0].label, "test.line")
        with self.assertRaises(ConfigError) as raised:
            loadLinkerConfig(os.path.join(path, "nope"), self.registry)
        self.assertIn("cannot read the configuration: Not a directory", str(raised.exception))


class PrefixPatternTests(SynchronousTestCase):
    def test_matching(self) -> None:
        pattern = PrefixPattern.read("/$/inet/{host}/*")
        self.assertEqual(
            pattern.match(Path.read("/$/inet/example.com/80/x")), {"host": "example.com"}
        )
        self.assertIsNone(pattern.match(Path.read("/$/inet/example.com")))
        self.assertIsNone(pattern.match(Path.read("/$/other/a/b")))
        self.assertEqual(PrefixPattern.read("/").match(Path.read("/a")), {})
        greedy = PrefixPattern.read("/{a}-{b}")
        self.assertEqual(greedy.match(Path.read("/x-y-z")), {"a": "x-y", "b": "z"})

    def test_bad(self) -> None:
        for text in ("svc", "/a//b", "/{a}{a}"):
            self.assertRaises(ValueError, PrefixPattern.read, text)
