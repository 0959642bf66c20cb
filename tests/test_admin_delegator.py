"""
Tests for C{/delegator.json} (L{linkrouter.admin.DelegatorResource}),
against the real naming library.
"""

import json

import attrs
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from linkrouter.interfaces import IDelegator
from linkrouter.naming import Dtab
from linkrouter.naming.interpreter import ConfiguredNamersInterpreter

from ._admin_helpers import AdminHarness


def resolverNotUsed(host):
    raise AssertionError(f"no name resolution expected for {host}")


@attrs.frozen
class Router:
    label: str
    dtab: Dtab
    interpreter: object


@implementer(IDelegator)
class Hanging:
    def __init__(self):
        self.pending = []

    def delegate(self, dtab, path):
        d: Deferred[object] = Deferred()
        self.pending.append(d)
        return d


ROUTER_DTAB = "/svc => /$/inet/127.0.0.1/9990"


class DelegatorTests(SynchronousTestCase):
    def setUp(self):
        interpreter = ConfiguredNamersInterpreter([], resolver=resolverNotUsed)
        self.harness = AdminHarness(
            routers={"http": Router("http", Dtab.read(ROUTER_DTAB), interpreter)}
        )

    def get(self, query):
        return self.harness.get("/delegator.json?" + query)

    def test_getWithDtab(self):
        """
        The C{dtab} parameter is the complete dtab used.
        """
        response = self.get("namespace=http&path=/svc/foo&dtab=/svc=>/$/fail")
        self.assertEqual(response.headers["content-type"], "application/json")
        tree = response.json()
        self.assertEqual((tree["type"], tree["path"]), ("delegate", "/svc/foo"))
        self.assertEqual(tree["delegate"]["type"], "fail")

    def test_getRouterDtab(self):
        """
        Without a C{dtab} parameter the router's dtab is used; with a single
        router the namespace may be left out.
        """
        tree = self.get("path=/svc/foo").json()
        leaf = tree["delegate"]
        self.assertEqual(leaf["dentry"], {"prefix": "/svc", "dst": "/$/inet/127.0.0.1/9990"})
        self.assertEqual(leaf["type"], "leaf")
        self.assertEqual(leaf["bound"]["addr"]["addrs"][0]["port"], 9990)

    def test_post(self):
        body = json.dumps({"namespace": "http", "dtab": ROUTER_DTAB, "path": "/svc/x"}).encode()
        response = self.harness.request(
            "POST",
            "/delegator.json",
            body=body,
            headers=[("Content-Type", "application/json; charset=utf-8")],
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(response.json()["path"], "/svc/x")

    def test_postNotJson(self):
        response = self.harness.request(
            "POST", "/delegator.json", body=b"path=/x", headers=[("Content-Type", "text/plain")]
        )
        self.assertEqual(response.code, 415)

    def test_postMalformed(self):
        for body in (b"{", b'{"path": "/x"}', b'{"dtab": "", "path": 3}', b"[]"):
            response = self.harness.request(
                "POST", "/delegator.json", body=body, headers=[("Content-Type", "application/json")]
            )
            self.assertEqual(response.code, 400)
            self.assertEqual(response.text, "Malformed delegation request: " + body.decode())

    def test_invalidInput(self):
        bad = self.get("path=/svc/foo&dtab=/a=>")
        self.assertEqual(bad.code, 400)
        self.assertTrue(bad.text.startswith("Invalid dtab: "), bad.text)
        bad = self.get("path=svc")
        self.assertEqual(bad.code, 400)
        self.assertTrue(bad.text.startswith("Invalid path: "), bad.text)
        self.assertEqual(self.get("").code, 400)

    def test_unknownNamespace(self):
        response = self.get("namespace=nope&path=/svc/foo")
        self.assertEqual(
            (response.code, response.text), (400, "Unknown namespace: nope (routers: http)")
        )


class DelegatorRoutersTests(SynchronousTestCase):
    def test_cannotDelegate(self):
        harness = AdminHarness(routers={"a": Router("a", Dtab.empty(), object())})
        response = harness.get("/delegator.json?namespace=a&path=/x")
        self.assertEqual(
            (response.code, response.text), (501, "Name Interpreter for a cannot show delegations")
        )

    def test_namespaceRequiredWithSeveralRouters(self):
        routers = {label: Router(label, Dtab.empty(), Hanging()) for label in ("a", "b")}
        response = AdminHarness(routers=routers).get("/delegator.json?path=/x")
        self.assertEqual((response.code, response.text), (400, "Missing namespace (routers: a, b)"))

    def test_timeout(self):
        """
        After two seconds the answer is 503 and the delegation is cancelled.
        """
        hanging = Hanging()
        harness = AdminHarness(routers={"a": Router("a", Dtab.empty(), hanging)})
        _, transport = harness.start("GET", "/delegator.json?path=/x")
        harness.pump(1.9)
        self.assertEqual(transport.value(), b"")
        harness.pump(0.1)
        response = harness.parse(transport.value())
        self.assertEqual((response.code, response.text), (503, "Request timed out."))
        self.assertTrue(hanging.pending[0].called)

    def test_delegationFails(self):
        @implementer(IDelegator)
        class Broken:
            def delegate(self, dtab, path):
                raise RuntimeError("namer exploded")

        harness = AdminHarness(routers={"a": Router("a", Dtab.empty(), Broken())})
        response = harness.get("/delegator.json?path=/x")
        self.assertEqual((response.code, response.text), (500, "Internal error: namer exploded"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
