"""
Property tests of configuration parsing on mutated Linkerd examples: take
an example that passes, change it (a value of another type, a key deleted
or added, a list emptied or repeated, a scalar made a list and back, another
plugin kind) and parse it again.  Whatever the change, the result is a
configuration or a L{ConfigError} whose problems are each one line
C{router.yaml:LINE:COL: path: message}, each said once; never another
exception, and never a plugin's exception reported as such.
C{linkrouter check} agrees.
"""

from __future__ import annotations

import copy
import io
import os
import re
from typing import Any, NamedTuple

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.cli import main
from linkrouter.config import ConfigError, parseLinkerConfig

from ._corpus import compatDir
from ._linker import registry
from .test_compat import corpus

FILENAME = "router.yaml"

PROBLEM = re.compile(r"(?P<file>.+?):(?P<line>[1-9][0-9]*):(?P<column>[1-9][0-9]*): (?P<rest>.+)")
"""One problem: C{FILE:LINE:COL: path: message} (the path is absent at the top)."""

UNHELPFUL = "failed to parse this section"
"""What a problem says when a plugin let an exception escape."""

KEYS = [
    "addForwardedHeader",
    "addr",
    "attemptTTwitterUpgrade",
    "backlog",
    "backoff",
    "bindingCache",
    "bindingTimeoutMs",
    "budget",
    "by",
    "caCertPath",
    "capacity",
    "certPath",
    "ciphers",
    "clearContext",
    "client",
    "clientAuth",
    "clientSession",
    "commonName",
    "compressionLevel",
    "configs",
    "consume",
    "decayTimeMs",
    "disableValidation",
    "dnsHosts",
    "domain",
    "dstPrefix",
    "dtab",
    "dtabFile",
    "enableProbation",
    "enabled",
    "experimental",
    "failFast",
    "failureAccrual",
    "failures",
    "for",
    "header",
    "highLoad",
    "host",
    "hostConnectionPool",
    "httpAccessLog",
    "httpAccessLogRollPolicy",
    "httpAccessLogRotateCount",
    "httpIdentifierPort",
    "httpUriInDst",
    "identifier",
    "idleTimeMs",
    "intermediateCertsPath",
    "interpreter",
    "ip",
    "keepAlive",
    "keyPath",
    "kind",
    "label",
    "lifeTimeMs",
    "loadBalancer",
    "lowLoad",
    "maxChunkKB",
    "maxConcurrentRequests",
    "maxEffort",
    "maxEjectionPercent",
    "maxHeadersKB",
    "maxMs",
    "maxSize",
    "maxWaiters",
    "minAperture",
    "minMs",
    "minRetriesPerSec",
    "minSize",
    "ms",
    "name",
    "originator",
    "path",
    "pattern",
    "percentCanRetry",
    "port",
    "prefix",
    "protocol",
    "protocols",
    "readTimeoutMs",
    "refreshIntervalSeconds",
    "requestAttemptTimeoutMs",
    "requests",
    "requeueBudget",
    "requireClientAuth",
    "responseClassifier",
    "retries",
    "retryable",
    "rootDir",
    "sampleRate",
    "security",
    "segments",
    "serverSession",
    "servers",
    "service",
    "shutdownGraceMs",
    "smoothWindowMs",
    "socketOptions",
    "streamingEnabled",
    "successRate",
    "thriftFramed",
    "thriftMaxMessageBytes",
    "thriftMethodInDst",
    "thriftProtocol",
    "timestampHeader",
    "tls",
    "totalTimeoutMs",
    "transformers",
    "trustCerts",
    "trustCertsBundle",
    "ttlSecs",
    "window",
    "workerThreads",
    "writeTimeoutMs",
    "zkAddrs",
]
"""Keys the parsers read, so that added keys reach more than "unknown key"."""

EXTRA_KINDS = [
    "io.l5d.global",
    "io.l5d.static",
    "constant",
    "jittered",
    "ip",
    "ip:port",
    "connectionRandom",
    "requestRandom",
    "router",
    "static",
]
"""Kinds that are not plugins: policies, backoffs, C{addForwardedHeader} labelers."""

STRINGS = [
    "",
    " ",
    "/",
    "//",
    "/#/io.l5d.fs",
    "/svc/{service}",
    "{service}",
    "*",
    "-1",
    "0",
    "1e400",
    "0.0.0.0",
    "::",
    "[::1]:53",
    "127.0.0.1:\u00b2",
    "localhost:x",
    "/svc => /#/io.l5d.fs;\n/svc/a => /$/inet/127.1/1",
    "/a=>\n/b",
    "é\u2603\U0001f600",
    "a\x00b",
    "\t\r\n",
    "TLSv1.9",
    "100.megabytes",
    "~",
]


class Written(NamedTuple):
    """A scalar as a user writes it: C{text}, of C{tag} if given, else as YAML resolves it."""

    text: str
    tag: str | None = None


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    pass


def _representWritten(dumper: yaml.SafeDumper, scalar: Written) -> yaml.ScalarNode:
    tag = scalar.tag or dumper.resolve(yaml.ScalarNode, scalar.text, (True, False))
    return dumper.represent_scalar(tag, scalar.text)


_Dumper.add_representer(Written, _representWritten)

_T = "tag:yaml.org,2002:"

WRITTEN = [
    *(
        Written(text)
        for text in [
            "2001-02-03",
            "2001-13-45",
            "2001-02-03 04:05:06",
            "0x_",
            "0b_",
            "-0x1F",
            "0o17",
            "017",
            "1_000",
            "1:30",
            "1" + "0" * 400,
            "9" * 5000,
            ".inf",
            "-.inf",
            ".nan",
            "=",
            "<<",
            "yes",
            "~",
        ]
    ),
    Written("maybe", _T + "bool"),
    Written("", _T + "int"),
    Written("abc", _T + "int"),
    Written("", _T + "float"),
    Written("x", _T + "timestamp"),
    Written("!", _T + "binary"),
    Written("x", _T + "null"),
    Written("1", _T + "str"),
    Written("x", "!custom"),
]
"""Scalars that YAML 1.1 reads as something else than text, or fails to read."""

scalars = st.one_of(
    st.integers(min_value=-3, max_value=70000),
    st.sampled_from([-1, -(2**63), 2**63, 2**64 + 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(STRINGS),
    st.sampled_from(WRITTEN),
    st.booleans(),
    st.none(),
)

keys = st.one_of(
    st.sampled_from(KEYS), st.text(max_size=6), st.sampled_from([Written("<<"), 1, True, None])
)

values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=5,
)

Where = int | tuple[str | int, ...]


class Mutation(NamedTuple):
    """
    One change: C{op} at C{at} (a key path, or an index into the document's
    paths), with C{value} (for C{add}, a C{(key, value)} pair; for C{kind},
    a kind or an index into the installed kinds).
    """

    op: str
    at: Where
    value: Any = None


mutations = st.one_of(
    st.builds(Mutation, st.just("set"), st.integers(min_value=0), values),
    st.builds(
        Mutation,
        st.just("add"),
        st.integers(min_value=0),
        st.tuples(keys, values),
    ),
    st.builds(Mutation, st.just("kind"), st.integers(min_value=0), st.integers(min_value=0)),
    st.builds(
        Mutation,
        st.sampled_from(["delete", "duplicate", "empty", "wrap", "unwrap"]),
        st.integers(min_value=0),
        st.none(),
    ),
)


def kinds(current: object) -> list[str]:
    """
    The kinds to choose from in place of C{current}: those of the same
    plugin interface if it is an installed kind, else all of them.
    """
    installed = [(iface, kind) for iface, _, kind, _ in registry().everything()]
    interfaces = {iface for iface, kind in installed if kind == current}
    same = sorted({kind for iface, kind in installed if iface in interfaces})
    return same or sorted({kind for _, kind in installed}) + EXTRA_KINDS


_examples: dict[str, Any] = {}


def examples() -> dict[str, Any]:
    """The corpus examples that pass, as YAML data, by name."""
    if not _examples:
        root = compatDir()
        for name in corpus():
            with open(os.path.join(root, name), "rb") as f:
                text = f.read()
            try:
                parseLinkerConfig(text, FILENAME, registry())
            except ConfigError:
                continue
            _examples[name] = yaml.safe_load(text)
    assert _examples, "no example passes"
    return _examples


def paths(value: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every key path in C{value}, the top first, in document order."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*path, index))
    return found


def at(doc: object, path: tuple[str | int, ...]) -> Any:
    for key in path:
        doc = doc[key]  # type: ignore[index]
    return doc


def mutate(doc: object, m: Mutation) -> object:
    """C{doc} (a deep copy of it) with C{m} applied; unchanged if C{m} does not apply."""
    doc = copy.deepcopy(doc)
    candidates = paths(doc)
    if m.op in ("add", "kind"):
        mappings = [p for p in candidates if isinstance(at(doc, p), dict)]
        withKind = [p for p in mappings if "kind" in at(doc, p)]
        candidates = (withKind if m.op == "kind" else []) or mappings or candidates
    path = m.at if isinstance(m.at, tuple) else candidates[m.at % len(candidates)]
    current = at(doc, path)
    parent: Any = at(doc, path[:-1]) if path else None

    def replace(new: object) -> object:
        if not path:
            return new
        parent[path[-1]] = new
        return doc

    if m.op == "set":
        return replace(m.value)
    if m.op == "delete" and path:
        del parent[path[-1]]
    elif m.op == "add" and isinstance(current, dict):
        key, value = m.value
        current[key] = value
    elif m.op == "kind" and isinstance(current, dict):
        names = kinds(current.get("kind"))
        current["kind"] = names[m.value % len(names)] if isinstance(m.value, int) else m.value
    elif m.op == "duplicate" and isinstance(parent, list) and isinstance(path[-1], int):
        parent.insert(path[-1], copy.deepcopy(current))
    elif m.op == "duplicate" and isinstance(current, list) and current:
        current.append(copy.deepcopy(current[0]))
    elif m.op == "empty" and isinstance(current, (list, dict)):
        current.clear()
    elif m.op == "wrap":
        return replace([current])
    elif m.op == "unwrap" and isinstance(current, list) and current:
        return replace(current[0])
    return doc


def mutated(name: str, changes: list[Mutation]) -> str:
    """The example C{name} with C{changes} applied, as YAML text."""
    doc = examples()[name]
    for change in changes:
        doc = mutate(doc, change)
    text: str = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False)
    return text


def problemsOf(text: str) -> list[str] | None:
    """
    Parse C{text}: C{None} if it is a configuration, else its problems.

    @raise AssertionError: a problem is not one helpful, positioned line.
    """
    try:
        parseLinkerConfig(text, FILENAME, registry())
    except ConfigError as e:
        lines = [str(p) for p in e.problems]
        assert lines, "a ConfigError without problems"
        for line in lines:
            found = PROBLEM.fullmatch(line)
            assert found is not None and found["file"] == FILENAME, f"malformed: {line!r}"
            assert UNHELPFUL not in line, f"unhelpful: {line!r}"
        assert len(set(lines)) == len(lines), f"repeated: {lines!r}"
        assert str(e) == "\n".join(lines)
        return lines
    return None


FS = "linkerd-examples/fs.yaml"
LB = "linkerd-examples/loadbalancer.yaml"
RECENT = "linkerd-examples/recent-requests.yaml"
BALANCER = ("routers", 0, "client", "loadBalancer")
ACCRUAL = ("routers", 0, "client", "failureAccrual")

names = st.deferred(lambda: st.sampled_from(sorted(examples())))
changes = st.lists(mutations, min_size=1, max_size=3)


class MutatedExamplesTests(SynchronousTestCase):
    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(names, changes)
    @example(FS, [Mutation("add", ("namers", 0), ("prefix", "/a/"))])  # not a path, no default
    @example(LB, [Mutation("set", (*ACCRUAL, "backoff"), 0)])  # then "kind" required, nowhere
    @example(LB, [Mutation("set", ("routers", 0, "dtab"), "/a=>\n/b")])  # a dtab error's lines
    @example(LB, [Mutation("add", ("routers", 0), ("a\nb", 1))])  # a key's lines
    @example(LB, [Mutation("add", ("routers", 0), ("label", Written("2001-13-45")))])
    @example(LB, [Mutation("set", (*BALANCER, "maxEffort"), Written("0x_"))])
    @example(LB, [Mutation("set", (*BALANCER, "maxEffort"), Written("9" * 5000))])
    @example(LB, [Mutation("add", ("routers", 0), ("originator", Written("maybe", _T + "bool")))])
    @example(LB, [Mutation("set", (*ACCRUAL, "successRate"), Written("1" + "0" * 400))])
    @example(RECENT, [Mutation("set", ("telemetry", 0, "sampleRate"), Written("1" + "0" * 400))])
    @example(
        FS,
        [
            Mutation("kind", ("namers", 0), "io.l5d.dnssrv"),
            Mutation("add", ("namers", 0), ("dnsHosts", ["127.0.0.1:\u00b2"])),
        ],
    )
    def test_parseOrProblems(self, name: str, changes: list[Mutation]) -> None:
        problemsOf(mutated(name, changes))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(names, changes)
    def test_check(self, name: str, changes: list[Mutation]) -> None:
        """
        C{linkrouter check} fails a file (exit status 1) exactly when it
        has problems, and prints them as parsing does, never a traceback.
        """
        text = mutated(name, changes)
        problems = problemsOf(text)
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, FILENAME)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        out, err = io.StringIO(), io.StringIO()
        status = main(["check", path], out, err)
        if problems is None:
            self.assertEqual((status, out.getvalue(), err.getvalue()), (0, f"{path}: ok\n", ""))
        else:
            self.assertEqual(status, 1)
            self.assertEqual(out.getvalue(), "")
            self.assertNotIn("Traceback", err.getvalue())
            expected = [path + line.removeprefix(FILENAME) for line in problems]
            self.assertEqual(err.getvalue().splitlines(), expected)
