"""
Tests for the C{io.l5d.serversets} namer (L{namers.serversets}), against a
private ZooKeeper server started from the Debian C{zookeeper} package
(C{.ci/services.sh} installs it) on a free loopback port.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any, cast

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import Document
from linkrouter.interfaces import INamer, INamerPlugin
from linkrouter.naming import (
    ADDR_NEG,
    ADDR_PENDING,
    NEG,
    AddrBound,
    Address,
    AddrFailed,
    Bound,
    Leaf,
    Path,
)
from linkrouter.telemetry.stats import MetricsRegistry
from namers.serversets import (
    Member,
    ServersetError,
    ServersetsConfig,
    ServersetsNamer,
    Snapshot,
    addrOf,
    parseMember,
    serversetsNamer,
    zkTarget,
)

from .test_namers_fs import metricValue

ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
JAVA = shutil.which("java")
# No fsync: a busy test machine's disk must not stall session creation.
JVM_FLAGS = ("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Dzookeeper.forceSync=no")
PREFIX = Path.read("/#/io.l5d.serversets")


def P(text):
    return Path.read(text)


def missingZooKeeper() -> str | None:
    if JAVA is None or not os.path.exists(ZK_JAR):
        return f"no ZooKeeper installation ({ZK_JAR} and java); run .ci/services.sh"
    return None


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ZkServer:
    """A standalone ZooKeeper on 127.0.0.1 with a temporary data directory."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="zk-test-")
        self.port = freePort()
        self.config = os.path.join(self.dir, "zoo.cfg")
        with open(self.config, "w") as f:
            f.write(
                f"tickTime=500\ndataDir={self.dir}/data\nclientPort={self.port}\n"
                "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                "4lw.commands.whitelist=srvr\nminSessionTimeout=1000\n"
            )
        self.process: subprocess.Popen[bytes] | None = None
        _started.append(self)

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        assert JAVA is not None
        with open(os.path.join(self.dir, "log"), "ab") as log:
            self.process = subprocess.Popen(
                [JAVA, *JVM_FLAGS, "-cp", ZK_JAR, ZK_MAIN, self.config],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                # Unlike ruok, srvr answers with statistics only once serving.
                with socket.create_connection(("127.0.0.1", self.port), 1.0) as s:
                    s.sendall(b"srvr")
                    if s.recv(1024).startswith(b"Zookeeper version"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        with open(os.path.join(self.dir, "log"), "rb") as f:
            tail = f.read()[-2000:].decode("utf-8", "replace")
        raise RuntimeError(f"ZooKeeper did not start on {self.hosts}:\n{tail}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: dict[str, Any] = {}
_started: list[ZkServer] = []


def sharedServer() -> ZkServer:
    """The module's ZooKeeper, started on first use (see L{tearDownModule})."""
    server = _shared.get("server")
    if server is None:
        server = _shared["server"] = ZkServer()
        server.start()
    return server


def tearDownModule() -> None:
    _shared.clear()
    while _started:
        _started.pop().destroy()


atexit.register(tearDownModule)  # also when run by trial, which has no tearDownModule


class Registrar:
    """Announces members as a Finagle server does (ephemeral sequential znodes)."""

    def __init__(self, hosts: str) -> None:
        from kazoo.client import KazooClient

        self.client = KazooClient(
            hosts=hosts, timeout=10.0, connection_retry={"max_tries": -1, "max_delay": 0.3}
        )
        self.client.start(timeout=20)

    def join(self, path, host="127.0.0.1", port=8080, status="ALIVE", shard=None, **extra):
        doc: dict[str, Any] = {"serviceEndpoint": {"host": host, "port": port}, "status": status}
        if shard is not None:
            doc["shard"] = shard
        if extra:
            doc["additionalEndpoints"] = {k: {"host": host, "port": p} for k, p in extra.items()}
        return self.raw(path, json.dumps(doc).encode())

    def raw(self, path, data):
        return self.client.create(
            path + "/member_", data, ephemeral=True, sequence=True, makepath=True
        )

    def close(self):
        self.client.stop()
        self.client.close()


def addrs(*hostPorts, shard=None):
    meta = frozenset([("shard_id", shard)]) if shard is not None else frozenset()
    return AddrBound(frozenset(Address(h, p, meta) for h, p in hostPorts))


class LogCapture:
    def __init__(self, case):
        self.events: list[Any] = []
        globalLogPublisher.addObserver(cast(Any, self.events.append))
        case.addCleanup(globalLogPublisher.removeObserver, cast(Any, self.events.append))

    def matching(self, text):
        return [e for e in self.events if text in e.get("log_format", "")]


# -- pure parts ------------------------------------------------------------


class ParseMemberTests(SynchronousTestCase):
    def test_full(self):
        data = json.dumps(
            {
                "serviceEndpoint": {"host": "10.0.0.1", "port": 8080},
                "additionalEndpoints": {
                    "admin": {"host": "10.0.0.1", "port": 9990},
                    "bad": {"host": "10.0.0.1", "port": "x"},
                },
                "status": "ALIVE",
                "shard": 3,
            }
        ).encode()
        self.assertEqual(
            parseMember(data),
            Member("ALIVE", 3, ("10.0.0.1", 8080), (("admin", ("10.0.0.1", 9990)),)),
        )

    def test_partial(self):
        self.assertEqual(parseMember(b"{}"), Member("UNKNOWN", None, None))
        self.assertEqual(
            parseMember(b'{"serviceEndpoint": {"host": "h", "port": true}, "shard": true}'),
            Member("UNKNOWN", None, None),
        )
        self.assertEqual(
            parseMember(b'{"serviceEndpoint": {"host": "h", "port": 70000}}'),
            Member("UNKNOWN", None, None),
        )

    def test_notJson(self):
        self.assertIn("not JSON", str(parseMember(b"{nope")))
        self.assertEqual(parseMember(b"[1]"), "not a JSON object")
        self.assertIn("not JSON", str(parseMember(b"\xff\xfe")))
        self.assertIsInstance(parseMember(b"[" * 100000), str)

    def test_addrOf(self):
        alive = Member("ALIVE", 1, ("a", 1), (("admin", ("a", 2)),))
        dead = Member("DEAD", None, ("b", 1))
        noShard = Member("ALIVE", None, ("c", 1))
        snapshot = Snapshot((alive, dead, noShard))
        self.assertEqual(
            addrOf(snapshot, None),
            AddrBound(frozenset([Address("a", 1, frozenset([("shard_id", 1)])), Address("c", 1)])),
        )
        self.assertEqual(addrOf(snapshot, "admin"), addrs(("a", 2), shard=1))
        self.assertEqual(addrOf(snapshot, "http"), ADDR_NEG)
        self.assertEqual(addrOf(Snapshot(()), None), ADDR_NEG)
        self.assertEqual(addrOf(Snapshot(None), None), ADDR_PENDING)
        self.assertEqual(addrOf(Snapshot(None, "down"), None), AddrFailed("down"))

    def test_zkTarget(self):
        self.assertEqual(zkTarget(P("/")), ("/", None))
        self.assertEqual(zkTarget(P("/a/b")), ("/a/b", None))
        self.assertEqual(zkTarget(P("/a/b:http")), ("/a/b", "http"))
        self.assertEqual(zkTarget(P("/a:x/b")), ("/a:x/b", None))
        self.assertEqual(zkTarget(P("/a/b:c:d")), ("/a/b", "c:d"))
        self.assertIsNone(zkTarget(P("/a/:http")))
        self.assertIsNone(zkTarget(P("/a/../b")))
        self.assertIsNone(zkTarget(Path(b"\xff")))


class PluginTests(SynchronousTestCase):
    def parse(self, text):
        registry = PluginRegistry.fromProviders([(INamerPlugin, serversetsNamer, "test")])
        document = Document("test.yaml", registry)
        section = document.load(text)
        assert section is not None
        result = section.parseAs(INamerPlugin)
        return result, document.problems

    def test_parse(self):
        result, problems = self.parse(
            "kind: io.l5d.serversets\nzkAddrs:\n- host: zk1\n  port: 2182\n- host: ::1\n"
        )
        self.assertEqual(problems, [])
        self.assertEqual(result.config, ServersetsConfig(PREFIX, (("zk1", 2182), ("::1", 2181))))
        self.assertEqual(result.config.connectString, "zk1:2182,[::1]:2181")

    def test_prefix(self):
        result, _ = self.parse("kind: io.l5d.serversets\nprefix: /zk\nzkAddrs: [{host: a}]\n")
        self.assertEqual(result.config.idPrefix, P("/#/zk"))

    def test_errors(self):
        for text, paths in [
            ("kind: io.l5d.serversets\n", ["zkAddrs"]),
            ("kind: io.l5d.serversets\nzkAddrs: []\n", ["zkAddrs"]),
            ("kind: io.l5d.serversets\nzkAddrs: [{port: 1}]\n", ["zkAddrs[0].host"]),
            ("kind: io.l5d.serversets\nzkAddrs: [{host: a, port: 0}]\n", ["zkAddrs[0].port"]),
            ("kind: io.l5d.serversets\nzkAddrs: [{host: 'a,b'}]\n", ["zkAddrs[0].host"]),
            ("kind: io.l5d.serversets\nzkAddrs: [{host: a, port: x}]\n", ["zkAddrs[0].port"]),
        ]:
            _, problems = self.parse(text)
            self.assertEqual([p.path for p in problems], paths, text)

    def test_dropinDoesNotImportKazoo(self):
        code = (
            "import sys, twisted.plugins.linkrouter_namers as m; "
            "assert m.serversetsNamer.kind == 'io.l5d.serversets'; "
            "assert m.rewriteNamer.kind == 'io.l5d.rewrite'; "
            "print(sorted(k for k in sys.modules if k.startswith('kazoo')))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        self.assertEqual((out.returncode, out.stdout.strip()), (0, "[]"), out.stderr)


# -- against a real ZooKeeper ----------------------------------------------


class Fixture(TestCase):
    timeout = 40

    if missingZooKeeper():
        skip = missingZooKeeper()

    def server(self) -> ZkServer:
        return sharedServer()

    def setUp(self):
        self.zk = self.server()
        self.base = f"/{type(self).__name__}/{self._testMethodName}"
        self.registrar = Registrar(self.zk.hosts)
        self.addCleanup(self.registrar.close)
        self.metrics = MetricsRegistry()
        self.namer = self.makeNamer(self.zk.hosts)

    def makeNamer(self, hosts, sessionTimeout=4.0):
        from namers._zk import ZkSession

        stats = self.metrics.statsReceiver()
        session = ZkSession(hosts, reactor, stats, sessionTimeout=sessionTimeout, maxRetryDelay=0.3)
        namer = ServersetsNamer(PREFIX, session, reactor, stats)
        self.addCleanup(namer.close)
        return namer

    def metric(self, name):
        return metricValue(self.metrics, name)

    def waitFor(self, var, predicate, what, seconds=15.0):
        """Observe C{var} until C{predicate(value)}; fail after C{seconds}."""
        d: defer.Deferred[Any] = defer.Deferred()
        last: list[Any] = [None]

        def check(value):
            last[0] = value
            if not d.called and predicate(value):
                d.callback(value)

        observation = var.observe(check)

        def expire():
            if not d.called:
                d.errback(AssertionError(f"timed out waiting for {what}; last: {last[0]!r}"))

        timer = reactor.callLater(seconds, expire)

        def done(result):
            observation.close()
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(done)

    def until(self, condition, what, seconds=15.0):
        """Poll C{condition()} until true; fail after C{seconds}."""
        deadline = time.monotonic() + seconds

        @defer.inlineCallbacks
        def poll():
            while not condition():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what}")
                yield deferLater(0.02)

        return poll()

    def tree(self, path):
        return self.namer.lookup(P(path))

    def treeIs(self, activity, predicate, what):
        from linkrouter.naming import Ok

        d = self.waitFor(activity.var, lambda s: type(s) is Ok and predicate(s.value), what)
        return d.addCallback(lambda state: state.value)


def deferLater(seconds):
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


def isLeaf(id, residual):
    def check(tree):
        return (
            isinstance(tree, Leaf)
            and isinstance(tree.value, Bound)
            and tree.value.id == id
            and tree.value.residual == residual
        )

    return check


class ServersetsTests(Fixture):
    @defer.inlineCallbacks
    def test_bindsAndFollowsMembers(self):
        web = self.base + "/web"
        self.registrar.join(web, port=8001, shard=0)
        second = self.registrar.join(web, port=8002, shard=0)
        tree = self.tree(self.base + "/web/x/y")
        found = yield self.treeIs(
            tree, isLeaf(PREFIX + P(web), P("/x/y")), "a leaf bound at the serverset"
        )
        addr = found.value.addr
        yield self.waitFor(
            addr, lambda a: a == addrs(("127.0.0.1", 8001), ("127.0.0.1", 8002), shard=0), "2"
        )
        watching = self.tree(self.base + "/web").var.observe(lambda s: None)
        self.addCleanup(watching.close)
        self.assertEqual(self.metric("observed_serversets"), 1)
        self.registrar.join(web, port=8003, shard=0)
        yield self.waitFor(addr, lambda a: len(a.addresses) == 3, "a third member")
        self.registrar.client.delete(second)
        yield self.waitFor(
            addr, lambda a: a == addrs(("127.0.0.1", 8001), ("127.0.0.1", 8003), shard=0), "2"
        )
        for child in self.registrar.client.get_children(web):
            self.registrar.client.delete(f"{web}/{child}")
        yield self.treeIs(tree, lambda t: t == NEG, "negative once empty")
        self.assertEqual(self.metric("stale"), 0)
        self.assertEqual(self.metric("connected"), 1)

    @defer.inlineCallbacks
    def test_namedEndpoint(self):
        self.registrar.join(self.base + "/svc", port=8080, admin=9990)
        self.registrar.join(self.base + "/svc", port=8081)
        tree = self.tree(self.base + "/svc:admin/rest")
        found = yield self.treeIs(
            tree, isLeaf(PREFIX + P(self.base + "/svc:admin"), P("/rest")), "endpoint leaf"
        )
        yield self.waitFor(found.value.addr, lambda a: a == addrs(("127.0.0.1", 9990)), "admin")
        yield self.treeIs(self.tree(self.base + "/svc:nope"), lambda t: t == NEG, "no endpoint")

    @defer.inlineCallbacks
    def test_missingThenCreated(self):
        tree = self.tree(self.base + "/later")
        yield self.treeIs(tree, lambda t: t == NEG, "negative while missing")
        self.registrar.join(self.base + "/later", port=7000)
        yield self.treeIs(
            tree, isLeaf(PREFIX + P(self.base + "/later"), P("/")), "bound once created"
        )

    @defer.inlineCallbacks
    def test_longestLivePrefix(self):
        self.registrar.join(self.base + "/web", port=8000)
        tree = self.tree(self.base + "/web/extra/more")
        yield self.treeIs(
            tree, isLeaf(PREFIX + P(self.base + "/web"), P("/extra/more")), "the shorter prefix"
        )
        self.registrar.join(self.base + "/web/extra", port=8001)
        found = yield self.treeIs(
            tree, isLeaf(PREFIX + P(self.base + "/web/extra"), P("/more")), "the longer prefix"
        )
        yield self.waitFor(found.value.addr, lambda a: a == addrs(("127.0.0.1", 8001)), "8001")

    @defer.inlineCallbacks
    def test_skipsMembersNotAlive(self):
        logs = LogCapture(self)
        path = self.base + "/mixed"
        self.registrar.join(path, port=1, status="DEAD")
        self.registrar.join(path, port=2, status="STARTING")
        self.registrar.raw(path, b"{not json")
        self.registrar.raw(path, b'{"status": "ALIVE"}')
        alive = self.registrar.join(path, port=3)
        self.registrar.client.create(path + "/other", b"{}")
        found = yield self.treeIs(self.tree(path), lambda t: isinstance(t, Leaf), "bound")
        addr = found.value.addr
        yield self.waitFor(addr, lambda a: a == addrs(("127.0.0.1", 3)), "only the live one")
        self.assertEqual(self.metric("member_parse_errors"), 1)
        self.assertEqual(len(logs.matching("skipped")), 1)
        # A member changing its status in place is followed too.
        observation = addr.observe(lambda a: None)
        self.addCleanup(observation.close)
        self.registrar.client.set(alive, json.dumps({"status": "STOPPING"}).encode())
        yield self.treeIs(self.tree(path), lambda t: t == NEG, "no live member left")

    @defer.inlineCallbacks
    def test_unreadable(self):
        from kazoo.security import make_digest_acl

        logs = LogCapture(self)
        private = [make_digest_acl("someone", "secret", all=True)]
        path = self.base + "/web"
        self.registrar.join(path, port=1)
        self.registrar.client.create(path + "/member_x", b"{}", acl=private)
        found = yield self.treeIs(self.tree(path), lambda t: isinstance(t, Leaf), "bound")
        yield self.waitFor(found.value.addr, lambda a: a == addrs(("127.0.0.1", 1)), "readable")
        self.assertEqual(self.metric("read_errors"), 1)
        self.assertEqual(len(logs.matching("cannot read serverset")), 1)
        self.registrar.client.create(self.base + "/closed", b"", acl=private)
        e = yield self.assertFailure(self.tree(self.base + "/closed").whenReady(), ServersetError)
        self.assertIn(self.base + "/closed", str(e))

    @defer.inlineCallbacks
    def test_watchesOnlyWhileObserved(self):
        path = self.base + "/svc"
        self.registrar.join(path, port=1)
        tree = self.tree(path)
        found = yield self.treeIs(tree, lambda t: isinstance(t, Leaf), "bound")
        watch = self.namer.watch(path)
        self.assertFalse(watch.watching)
        self.assertEqual(self.metric("observed_serversets"), 0)
        observation = found.value.addr.observe(lambda a: None)
        self.assertTrue(watch.watching)
        self.assertEqual(self.metric("observed_serversets"), 1)
        observation.close()
        self.assertFalse(watch.watching)
        self.assertEqual(self.namer.session._listeners, [])
        # Changes made while nobody watches are read when somebody looks again.
        self.registrar.join(path, port=2)
        yield self.waitFor(found.value.addr, lambda a: len(a.addresses) == 2, "fresh data")
        self.assertFalse(watch.watching)

    @defer.inlineCallbacks
    def test_deepAndOddNames(self):
        self.registrar.join(self.base, port=4)
        deep = Path(*P(self.base).elems, *[b"x"] * 500, b"\xff", b"..")
        found = yield self.treeIs(
            self.namer.lookup(deep), lambda t: isinstance(t, Leaf), "bound at the base"
        )
        self.assertEqual(found.value.id, PREFIX + P(self.base))
        self.assertEqual(len(found.value.residual), 502)
        odd = self.namer.lookup(Path(b"\xff", b"a:"))
        yield self.treeIs(odd, lambda t: t == NEG, "negative")

    @defer.inlineCallbacks
    def test_close(self):
        self.registrar.join(self.base + "/c", port=4)
        yield self.treeIs(self.tree(self.base + "/c"), lambda t: isinstance(t, Leaf), "bound")
        yield self.namer.close()
        yield self.namer.close()
        self.assertEqual(self.metric("connected"), 0)
        e = yield self.assertFailure(self.tree(self.base + "/d").whenReady(), ServersetError)
        self.assertIn("closed", str(e))

    @defer.inlineCallbacks
    def test_sessionExpiry(self):
        from kazoo.client import KazooClient

        logs = LogCapture(self)
        path = self.base + "/web"
        self.registrar.join(path, port=1)
        found = yield self.treeIs(self.tree(path), lambda t: isinstance(t, Leaf), "bound")
        addr = found.value.addr
        observation = addr.observe(lambda a: None)
        self.addCleanup(observation.close)
        yield self.waitFor(addr, lambda a: a == addrs(("127.0.0.1", 1)), "one member")
        # Closing a second client on the same session expires it for the first.
        twin = KazooClient(hosts=self.zk.hosts, client_id=self.namer.session._client.client_id)
        twin.start(timeout=10)
        twin.stop()
        twin.close()
        yield self.until(lambda: logs.matching("session expired"), "the expiry")
        yield self.until(lambda: self.namer.session.connected, "a new session")
        self.assertEqual(addr.sample(), addrs(("127.0.0.1", 1)))
        self.assertEqual(self.metric("session_expirations"), 1)
        # The watches are set again on the new session.
        self.registrar.join(path, port=2)
        yield self.waitFor(addr, lambda a: len(a.addresses) == 2, "the new member")

    @defer.inlineCallbacks
    def test_plugin(self):
        self.registrar.join(self.base + "/p", port=5)
        namer = serversetsNamer.build(
            ServersetsConfig(P("/#/zk"), (("127.0.0.1", self.zk.port),)),
            SimpleNamespace(reactor=reactor, stats=self.metrics.statsReceiver().scope("p")),
        )
        self.addCleanup(namer.close)
        self.assertTrue(INamer.providedBy(namer))
        yield self.waitFor(
            namer.lookup(P(self.base + "/p")).var,
            lambda s: (
                isinstance(getattr(s, "value", None), Leaf)
                and s.value.value.id == P("/#/zk" + self.base + "/p")
            ),
            "bound by the built namer",
        )


def _hostPorts(addr):
    return {(a.host, a.port) for a in getattr(addr, "addresses", ())}


class OutageTests(Fixture):
    """ZooKeeper stops and restarts under the namer (a private server)."""

    def server(self) -> ZkServer:
        server = ZkServer()
        server.start()
        self.addCleanup(server.destroy)
        return server

    @defer.inlineCallbacks
    def test_staleWhileDownThenRecovers(self):
        logs = LogCapture(self)
        path = self.base + "/web"
        self.registrar.join(path, port=1)
        found = yield self.treeIs(self.tree(path), lambda t: isinstance(t, Leaf), "bound")
        addr = found.value.addr
        observation = addr.observe(lambda a: None)
        self.addCleanup(observation.close)
        yield self.waitFor(addr, lambda a: a == addrs(("127.0.0.1", 1)), "one member")

        self.zk.stop()
        yield self.until(lambda: not self.namer.session.connected, "the connection loss")
        self.assertEqual(addr.sample(), addrs(("127.0.0.1", 1)))
        self.assertEqual(self.metric("stale"), 1)
        self.assertEqual(self.metric("connected"), 0)
        self.assertEqual(len(logs.matching("connection lost")), 1)
        # A name never read before fails rather than hangs.
        failed = self.tree(self.base + "/other").whenReady()
        yield self.assertFailure(failed, ServersetError)

        self.zk.start()
        yield self.until(lambda: self.namer.session.connected, "the reconnection")
        self.assertEqual(len(logs.matching("reconnected")), 1)
        self.assertEqual(len(logs.matching("connection lost")), 1)
        yield self.until(lambda: self.registrar.client.connected, "the registrar")
        self.registrar.join(path, port=2)
        # On a slow machine the restart can outlast the registrar's session, whose
        # first member then goes (briefly no members at all): wait for the new one.
        yield self.waitFor(addr, lambda a: ("127.0.0.1", 2) in _hostPorts(a), "the new member")
        self.assertEqual(self.metric("stale"), 0)
        self.assertEqual(self.metric("session_losses"), 1)


class UnreachableTests(TestCase):
    timeout = 20

    @defer.inlineCallbacks
    def test_failsWhenNeverConnected(self):
        from namers._zk import ZkSession

        metrics = MetricsRegistry()
        session = ZkSession(
            f"127.0.0.1:{freePort()}",
            reactor,
            metrics.statsReceiver(),
            sessionTimeout=1.0,
            maxRetryDelay=0.3,
        )
        namer = ServersetsNamer(PREFIX, session, reactor, metrics.statsReceiver())
        self.addCleanup(namer.close)
        e = yield self.assertFailure(namer.lookup(P("/a/b")).whenReady(), ServersetError)
        self.assertIn("cannot connect to ZooKeeper", str(e))
