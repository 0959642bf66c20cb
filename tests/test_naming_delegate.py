import json
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from linkrouter.naming import ConfiguredNamersInterpreter, ParseError, explain


def resolverNotUsed(host: str):
    raise AssertionError("no DNS here")


class ExplainTests(SynchronousTestCase):
    def explain(self, dtab: str, path: str) -> dict[str, Any]:
        interpreter = ConfiguredNamersInterpreter([], resolver=resolverNotUsed)
        result = self.successResultOf(explain(dtab, path, interpreter))
        json.dumps(result)
        return result

    def test_chain(self) -> None:
        out = self.explain("/s=>/$/inet/127.0.0.1/8080;/a=>/s/x", "/a/foo")
        leaf = {
            "type": "leaf",
            "path": "/$/inet/127.0.0.1/8080/x/foo",
            "dentry": {"prefix": "/s", "dst": "/$/inet/127.0.0.1/8080"},
            "bound": {
                "addr": {
                    "type": "bound",
                    "addrs": [{"ip": "127.0.0.1", "port": 8080, "meta": {}}],
                    "meta": {},
                },
                "id": "/$/inet/127.0.0.1/8080",
                "path": "/x/foo",
            },
        }
        self.assertEqual(
            out,
            {
                "type": "delegate",
                "path": "/a/foo",
                "delegate": {
                    "type": "delegate",
                    "path": "/s/x/foo",
                    "dentry": {"prefix": "/a", "dst": "/s/x"},
                    "delegate": leaf,
                },
            },
        )
        self.assertEqual(list(out["delegate"]["delegate"]), ["type", "path", "dentry", "bound"])

    def test_altExploresAll(self) -> None:
        out = self.explain("/a=>/b;/a=>/c;/c=>/$/nil;/b=>~", "/a")
        self.assertEqual(out["type"], "alt")
        self.assertEqual([t["type"] for t in out["alt"]], ["delegate", "delegate"])
        self.assertEqual(
            out["alt"][0]["delegate"],
            {"type": "empty", "path": "/$/nil", "dentry": {"prefix": "/c", "dst": "/$/nil"}},
        )
        self.assertEqual(out["alt"][1]["delegate"]["path"], "~")

    def test_negFailException(self) -> None:
        self.assertEqual(self.explain("", "/a"), {"type": "neg", "path": "/a"})
        fail = self.explain("/a=>!", "/a")["delegate"]
        self.assertEqual(fail["path"], "!")
        self.assertEqual(self.explain("/a=>/$/fail", "/a")["delegate"]["path"], "/$/fail")
        exc = self.explain("/a=>/$/nope", "/a")["delegate"]
        self.assertEqual(exc["type"], "exception")
        self.assertEqual(exc["message"], "Unknown namer: nope for path: /$/nope")

    def test_union(self) -> None:
        out = self.explain("/a=>/$/nil & 2*/$/fail", "/a")
        self.assertEqual(out["type"], "union")
        self.assertEqual([u["weight"] for u in out["union"]], [1.0, 2.0])

    def test_loop(self) -> None:
        out = self.explain("/a=>/b;/b=>/a", "/a")
        self.assertEqual(
            out, {"type": "exception", "path": "/a", "message": "Max recursion level reached."}
        )
        out = self.explain("/a=>/b | /$/nil;/b=>/b/b", "/a")
        self.assertEqual(out["alt"][0]["type"], "exception")

    def test_invalidInput(self) -> None:
        i = ConfiguredNamersInterpreter([], resolver=resolverNotUsed)
        e = self.assertRaises(ParseError, explain, "/a=>", "/a", i)
        self.assertEqual(str(e), "Invalid dtab: simple expected but end of input found at '/a=>[]'")
        e = self.assertRaises(ParseError, explain, "", "invalid-param", i)
        self.assertEqual(str(e), "Invalid path: '/' expected but 'i' found at '[i]nvalid-param'")
