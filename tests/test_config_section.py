"""
Tests for L{linkrouter.config.Section} and document loading.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import REQUIRED, ConfigError, Document, PluginConfig, Section
from linkrouter.interfaces import INamerPlugin, ITelemeterPlugin


class _Namer:
    kind = "io.l5d.fs"

    def parseConfig(self, section: Section) -> Any:
        return section.get("rootDir", str, REQUIRED)


class _Raising:
    kind = "broken"

    def parseConfig(self, section: Section) -> Any:
        raise RuntimeError("boom")


REGISTRY = PluginRegistry.fromProviders(
    [(INamerPlugin, _Namer(), "t.fs"), (INamerPlugin, _Raising(), "t.broken")]
)


def problems(text: str, read: Any = None) -> list[str]:
    """
    Load C{text}, let C{read} read the top section, and return the problems
    as printed.
    """
    document = Document("f.yaml", REGISTRY)
    top = document.load(text)
    if top is not None and read is not None:
        read(top)
    try:
        document.finish()
    except ConfigError as e:
        return str(e).splitlines()
    return []


class GetTests(SynchronousTestCase):
    def load(self, text: str) -> tuple[Document, Section]:
        document = Document("f.yaml", REGISTRY)
        top = document.load(text)
        assert top is not None
        return document, top

    def test_types(self) -> None:
        _, top = self.load("a: 1\nb: 1.5\nc: hi\nd: true\ne: [1, 2]\nf: {x: 1}\ng: 2\n")
        self.assertEqual(top.get("a", int), 1)
        self.assertEqual(top.get("b", float), 1.5)
        self.assertEqual(top.get("c", str), "hi")
        self.assertIs(top.get("d", bool), True)
        self.assertEqual(top.get("e", list), [1, 2])
        self.assertEqual(top.get("f", dict), {"x": 1})
        self.assertEqual(top.get("g", float), 2.0)
        self.assertIsInstance(top.get("g", float), float)
        self.assertEqual(top.get("missing", int, 7), 7)
        self.assertEqual(top.get("c", (int, str)), "hi")

    def test_wrongTypePositioned(self) -> None:
        self.assertEqual(
            problems(
                "routers:\n- servers:\n  - port: true\n",
                lambda top: top.sections("routers")[0].sections("servers")[0].get("port", int),
            ),
            ["f.yaml:3:11: routers[0].servers[0].port: expected an integer, got a boolean"],
        )

    def test_required(self) -> None:
        self.assertEqual(
            problems("a: 1\n", lambda top: (top.get("a", int), top.get("b", str, REQUIRED))),
            ["f.yaml:1:1: b: required key is missing"],
        )

    def test_nullIsAbsent(self) -> None:
        self.assertEqual(
            problems("a: null\n", lambda top: self.assertEqual(top.get("a", int, 3), 3)), []
        )

    def test_unknownKeysWithSuggestion(self) -> None:
        self.assertEqual(
            problems(
                "dstPrefx: /svc\nlabel: x\n",
                lambda top: (top.get("dstPrefix", str), top.get("label", str)),
            ),
            ["f.yaml:1:1: dstPrefx: unknown key (did you mean 'dstPrefix'?)"],
        )

    def test_allProblemsAtOnce(self) -> None:
        found = problems("a: x\nb: y\nc: z\n", lambda top: (top.get("a", int), top.get("b", bool)))
        self.assertEqual(len(found), 3)
        self.assertEqual([line.split(":")[1] for line in found], ["1", "2", "3"])

    def test_duplicateKey(self) -> None:
        self.assertIn(
            "f.yaml:2:1: a: duplicate key", problems("a: 1\na: 2\n", lambda top: top.get("a", int))
        )

    def test_syntaxError(self) -> None:
        [line] = problems("a: [1, 2\n")
        self.assertTrue(line.startswith("f.yaml:2:1: "), line)

    def test_notAMapping(self) -> None:
        self.assertEqual(
            problems("- 1\n"), ["f.yaml:1:1: expected a mapping at the top level, got a list"]
        )
        self.assertEqual(problems(""), ["f.yaml:1:1: the configuration is empty"])

    def test_json(self) -> None:
        document = Document("f.json", REGISTRY)
        top = document.load('{"admin": {"port": 9991}, "x": [1, {"y": null}]}')
        assert top is not None
        self.assertEqual(top.section("admin").get("port", int), 9991)
        self.assertEqual(top.get("x", list), [1, {"y": None}])

    def test_unsafeTagsRefused(self) -> None:
        [line] = problems("a: !!python/object:os.system x\n", lambda top: top.get("a", dict))
        self.assertIn("a: expected a mapping, got a python/object:os.system", line)

    def test_aliasBomb(self) -> None:
        text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for n in range(1, 9):
            text += f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]\n"
        found = problems(text, lambda top: (top.readAll(), top.get("a8", list)))
        self.assertTrue(any("too large" in line for line in found), found)

    def test_deepNesting(self) -> None:
        found = problems("a: " + "[" * 5000 + "]" * 5000 + "\n")
        self.assertTrue(found)
        found = problems("a: " + "[" * 100 + "]" * 100 + "\n", lambda top: top.get("a", list))
        self.assertTrue(any("nested too deeply" in line for line in found), found)

    def test_unreadableScalars(self) -> None:
        cases = [
            ("0x_", int, "not a valid integer: '0x_'"),
            ("!!bool maybe", bool, "not a valid boolean: 'maybe'"),
            ("!!int ''", (int, str), "not a valid integer: ''"),
            ("2001-13-45", str, "not a valid timestamp: '2001-13-45'"),
            ("9" * 5000, int, "too many digits (at most 4300)"),
            ("1" + "0" * 400, float, "too large a number"),
            (".nan", float, "expected a finite number, got .nan"),
            ("2147483648", int, "out of range: integers are at most 2147483647, as in Linkerd"),
            ("-.inf", float, "expected a finite number, got -.inf"),
        ]
        for text, wanted, message in cases:
            found = problems(f"a: {text}\n", lambda top, t=wanted: (top.get("a", t), top.plain()))
            self.assertEqual(found, [f"f.yaml:1:4: a: {message}"])

    def test_unreadableInLists(self) -> None:
        self.assertEqual(
            problems("a: [1, 2001-13-45]\n", lambda top: top.get("a", list)),
            ["f.yaml:1:8: a[1]: not a valid timestamp: '2001-13-45'"],
        )

    def test_problemsOnOneLine(self) -> None:
        self.assertEqual(
            problems('"a\\nb": 1\nc: 2\n', lambda top: top.error("x\ny\x00", "c")),
            ["f.yaml:1:1: a\\nb: unknown key", "f.yaml:2:4: c: x\\ny\\x00"],
        )

    def test_notAMappingReportedOnce(self) -> None:
        def read(top: Section) -> None:
            a = top.section("a")
            a.get("x", int, REQUIRED)
            a.section("b").error("wrong")

        self.assertEqual(
            problems("a: 1\n", read), ["f.yaml:1:4: a: expected a mapping, got an integer"]
        )

    def test_mergeKeys(self) -> None:
        def read(top: Section) -> None:
            self.assertEqual(top.section("b").get("x", int), 1)
            top.readAll()

        self.assertEqual(problems("a: &base {x: 1}\nb:\n  <<: *base\n", read), [])


class PluginTests(SynchronousTestCase):
    def test_plugin(self) -> None:
        result: list[Any] = []
        self.assertEqual(
            problems(
                "n: {kind: io.l5d.fs, rootDir: /d}\n",
                lambda top: result.append(top.plugin("n", INamerPlugin)),
            ),
            [],
        )
        [parsed] = result
        self.assertIsInstance(parsed, PluginConfig)
        self.assertEqual(parsed.config, "/d")
        self.assertEqual(parsed.plugin.kind, "io.l5d.fs")

    def test_unsupportedKind(self) -> None:
        self.assertEqual(
            problems(
                "n:\n- kind: io.l5d.k8s\n  host: x\n", lambda top: top.pluginList("n", INamerPlugin)
            ),
            [
                "f.yaml:2:9: n[0].kind: Namer kind 'io.l5d.k8s' is not supported"
                " (supported: broken, io.l5d.fs)"
            ],
        )

    def test_noneSupported(self) -> None:
        [line] = problems(
            "t: [{kind: io.l5d.prometheus}]\n", lambda top: top.pluginList("t", ITelemeterPlugin)
        )
        self.assertIn("(supported: none yet)", line)

    def test_pluginProblemsAndUnknownKeys(self) -> None:
        self.assertEqual(
            problems(
                "n: {kind: io.l5d.fs, rootDri: /d}\n", lambda top: top.plugin("n", INamerPlugin)
            ),
            [
                "f.yaml:1:4: n.rootDir: required key is missing",
                "f.yaml:1:22: n.rootDri: unknown key (did you mean 'rootDir'?)",
            ],
        )

    def test_raisingPlugin(self) -> None:
        [line] = problems("n: {kind: broken}\n", lambda top: top.plugin("n", INamerPlugin))
        self.assertIn("n: plugin _Raising failed to parse this section: RuntimeError('boom')", line)

    def test_defaultOnlyIfRegistered(self) -> None:
        result: list[Any] = []

        def read(top: Section) -> None:
            result.append(top.plugin("a", INamerPlugin, {"kind": "nope"}))
            result.append(top.plugin("b", INamerPlugin, {"kind": "io.l5d.fs", "rootDir": "/x"}))

        self.assertEqual(problems("{}", read), [])
        self.assertIsNone(result[0])
        self.assertEqual(result[1].config, "/x")
