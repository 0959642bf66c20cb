# -*- test-case-name: tests.test_config_section -*-
"""
Configuration documents with positions, and L{Section}, the reader every
plugin parses its configuration with.

A document is composed (never constructed) with PyYAML's safe loader, so
every mapping key and value keeps its line and column.  JSON is read by the
same loader.  Problems are collected, never raised, so that one run reports
all of them; L{Document.finish} adds the keys nobody read and raises
L{ConfigError} if anything went wrong.
"""

from __future__ import annotations

import difflib
import enum
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

import attrs
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from linkrouter._plugins import PluginRegistry
from linkrouter.interfaces import IKindPlugin

T = TypeVar("T")

_MAX_VALUES = 100_000
"""How many YAML nodes one document may expand to (alias bombs)."""

_MAX_DEPTH = 64
"""How deeply plain values (lists, dicts) may nest."""

_TAG = "tag:yaml.org,2002:"


class _Required(enum.Enum):
    REQUIRED = "REQUIRED"

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required.REQUIRED
"""The C{default} of a key that must be present."""


_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)
"""Linkerd reads integer settings as 32-bit integers; so do we, refusing the rest."""


def _oneLine(text: str) -> str:
    """
    C{text} with line breaks and other unprintable characters escaped, so
    that a problem quoting the configuration stays on one line.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@attrs.frozen
class Problem:
    """
    One thing wrong with a configuration, at C{line}:C{column} (1-based;
    C{0} when unknown) of C{filename}, under the key path C{path}.
    """

    filename: str
    line: int
    column: int
    path: str = attrs.field(converter=_oneLine)
    message: str = attrs.field(converter=_oneLine)

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}:{self.column}" if self.line else self.filename
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """
    A configuration has problems; C{str()} is one line per problem.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__(problems)
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


@attrs.frozen
class PluginConfig:
    """
    A kind-dispatched sub-configuration: the plugin provider chosen by
    C{kind}, and what its C{parseConfig} returned.
    """

    plugin: Any
    config: object


_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "a boolean",
    list: "a list",
    dict: "a mapping",
}


def _describeNode(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    short = node.tag.removeprefix(_TAG)
    return {
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "bool": "a boolean",
        "null": "null",
    }.get(short, f"a {short}")


def _unreadable(node: ScalarNode) -> str:
    what = _describeNode(node).split(" ", 1)[-1]
    limit = sys.get_int_max_str_digits()
    if what == "integer" and limit and len(node.value) > limit:
        return f"too many digits (at most {limit})"
    text = node.value if len(node.value) <= 40 else node.value[:40] + "..."
    return f"not a valid {what}: {text!r}"


def _position(node: Node | None) -> tuple[int, int]:
    mark = getattr(node, "start_mark", None)
    if mark is None:
        return (0, 0)
    return (mark.line + 1, mark.column + 1)


def childPath(path: str, key: str | int) -> str:
    """
    The key path of C{key} (a mapping key or a list index) under C{path}.
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Document:
    """
    One configuration file being parsed: its name, the plugin registry its
    kinds are looked up in, and the problems found so far.
    """

    def __init__(self, filename: str, registry: PluginRegistry) -> None:
        self.filename = filename
        self.registry = registry
        self.problems: list[Problem] = []
        self._reported: set[Problem] = set()
        self._sections: dict[int, Section] = {}
        self._budget = _MAX_VALUES
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, node: Node | None, path: str, message: str) -> None:
        line, column = _position(node)
        problem = Problem(self.filename, line, column, path, message)
        if problem not in self._reported:
            self._reported.add(problem)
            self.problems.append(problem)

    def load(self, text: str | bytes) -> Section | None:
        """
        Compose C{text} (YAML or JSON); return its top-level L{Section}, or
        C{None} after recording why it is not a mapping.
        """
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            message = " ".join(m for m in (e.context, e.problem) if m)
            self.problems.append(Problem(self.filename, line, column, "", message))
            return None
        except yaml.YAMLError as e:
            self.problems.append(Problem(self.filename, 0, 0, "", str(e).replace("\n", " ")))
            return None
        except RecursionError:
            self.problems.append(Problem(self.filename, 0, 0, "", "the document nests too deeply"))
            return None
        if node is None:
            self.problems.append(Problem(self.filename, 1, 1, "", "the configuration is empty"))
            return None
        if not isinstance(node, MappingNode):
            self.problem(
                node, "", f"expected a mapping at the top level, got {_describeNode(node)}"
            )
            return None
        return self.section(node, "")

    def synthetic(self, value: object, path: str, quiet: bool = False) -> Section:
        """
        A section over a Python mapping (a default), positioned nowhere.  A
        C{quiet} one records no problems: it stands in for a value already
        reported as not a mapping.
        """
        node = yaml.representer.SafeRepresenter().represent_data(value)
        assert isinstance(node, MappingNode)
        section = self.section(node, path)
        section.quiet = quiet
        return section

    def section(self, node: MappingNode, path: str) -> Section:
        """
        The one L{Section} over C{node}, so that reads through any handle on
        a mapping count for all.
        """
        found = self._sections.get(id(node))
        if found is None:
            found = self._sections[id(node)] = Section(self, node, path)
        return found

    def finish(self) -> None:
        """
        Report every key never read, then raise L{ConfigError} if there
        were problems.
        """
        for section in list(self._sections.values()):
            section.reportUnread()
        if self.problems:
            self.problems.sort(key=lambda p: (p.line, p.column))
            raise ConfigError(self.problems)

    def spend(self, node: Node) -> bool:
        self._budget -= 1
        if self._budget == 0:
            self.problem(node, "", "the document is too large (too many values or aliases)")
        return self._budget > 0

    def scalar(self, node: ScalarNode) -> object:
        """
        The value of C{node}.

        @raise ValueError: its text is not a value of its type (C{0x_},
            C{2001-13-45}, C{!!bool maybe}, an unknown tag).
        """
        try:
            return self._constructor.construct_object(node)
        except yaml.YAMLError as e:
            message = str(getattr(e, "problem", e))
        except Exception:  # PyYAML's constructors assume well-formed text
            message = _unreadable(node)
        self._constructor.recursive_objects.pop(node, None)
        raise ValueError(message)

    def flatten(self, node: MappingNode) -> str | None:
        try:
            self._constructor.flatten_mapping(node)
        except yaml.constructor.ConstructorError as e:
            return str(e.problem)
        return None


class Section:
    """
    A reader over one configuration mapping that knows its file, its key
    path (C{routers[0].servers[1]}) and where each key is.

    Reading a key marks it as known; keys nobody reads are reported as
    unknown when the document is finished.
    """

    def __init__(self, document: Document, node: MappingNode, path: str) -> None:
        self.document = document
        self.path = path
        self.node = node
        self.quiet = False
        self._entries: dict[str, tuple[Node, Node]] = {}
        self._read: set[str] = set()
        self._asked: set[str] = set()
        problem = document.flatten(node)
        if problem is not None:
            document.problem(node, path, problem)
            return
        for keyNode, valueNode in node.value:
            key = keyNode.value if isinstance(keyNode, ScalarNode) else None
            if not isinstance(key, str) or keyNode.tag != _TAG + "str":
                document.problem(keyNode, path, "keys must be strings")
            elif key in self._entries:
                document.problem(keyNode, childPath(path, key), "duplicate key")
            else:
                self._entries[key] = (keyNode, valueNode)

    def __repr__(self) -> str:
        return f"<Section {self.path or '(top)'} of {self.document.filename}>"

    @property
    def registry(self) -> PluginRegistry:
        return self.document.registry

    def has(self, key: str) -> bool:
        """
        Whether C{key} is present with a non-null value (without reading it).
        """
        entry = self._entries.get(key)
        return entry is not None and entry[1].tag != _TAG + "null"

    def keys(self) -> list[str]:
        """
        The keys present, in file order (without reading them).
        """
        return list(self._entries)

    def readAll(self) -> None:
        """
        Mark every key as read, e.g. after refusing the whole section.
        """
        self._read.update(self._entries)

    def _problem(self, node: Node | None, path: str, message: str) -> None:
        if not self.quiet:
            self.document.problem(node, path, message)

    def error(self, message: str, key: str | None = None) -> None:
        """
        Record a problem with this section, or with C{key} in it.
        """
        if key is None:
            self._problem(self.node, self.path, message)
            return
        self._read.add(key)
        entry = self._entries.get(key)
        node = entry[1] if entry else self.node
        self._problem(node, childPath(self.path, key), message)

    def _take(self, key: str) -> Node | None:
        self._asked.add(key)
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._read.add(key)
        return None if entry[1].tag == _TAG + "null" else entry[1]

    @overload
    def get(self, key: str, type: type[T], default: T | _Required | None = None) -> T | None: ...

    @overload
    def get(self, key: str, type: tuple[type, ...], default: Any = None) -> Any: ...

    def get(self, key: str, type: Any, default: Any = None) -> Any:
        """
        The value of C{key}, of C{type} (C{int}, C{float}, C{str}, C{bool},
        C{list}, C{dict} or a tuple of those); C{default} if it is absent or
        null.  A wrong type, or a missing key whose default is L{REQUIRED},
        records a problem and returns C{None}.
        """
        node = self._take(key)
        path = childPath(self.path, key)
        if node is None:
            if default is REQUIRED:
                self._problem(self.node, path, "required key is missing")
                return None
            return default
        types = type if isinstance(type, tuple) else (type,)
        for t in types:
            try:
                ok, value = self._convert(node, t, path)
            except ValueError as e:
                self.document.problem(node, path, str(e))
                return None
            if ok:
                return value
        wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
        self.document.problem(node, path, f"expected {wanted}, got {_describeNode(node)}")
        return None

    def _convert(self, node: Node, t: type, path: str) -> tuple[bool, object]:
        if t is dict or t is list:
            if not isinstance(node, MappingNode if t is dict else SequenceNode):
                return (False, None)
            return (True, self._plain(node, path, 0))
        if not isinstance(node, ScalarNode):
            return (False, None)
        tag = node.tag.removeprefix(_TAG)
        if t is str:
            return (tag not in ("null", "bool"), node.value)
        if t is bool:
            return (tag == "bool", self.document.scalar(node) if tag == "bool" else None)
        if t is int and tag == "int":
            value = self.document.scalar(node)
            if not _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
                raise ValueError(f"out of range: integers are at most {_INT_MAX}, as in Linkerd")
            return (True, value)
        if t is float and tag in ("int", "float"):
            try:
                number = float(self.document.scalar(node))  # type: ignore[arg-type]
            except OverflowError:
                raise ValueError("too large a number") from None
            if not math.isfinite(number):
                raise ValueError(f"expected a finite number, got {node.value}")
            return (True, number)
        return (False, None)

    def _plain(self, node: Node, path: str, depth: int) -> object:
        """
        Convert a subtree to plain Python values, within the document's
        size budget and a depth limit.
        """
        if not self.document.spend(node) or depth > _MAX_DEPTH:
            if depth > _MAX_DEPTH:
                self.document.problem(node, path, "nested too deeply")
            return None
        if isinstance(node, SequenceNode):
            return [self._plain(n, childPath(path, i), depth + 1) for i, n in enumerate(node.value)]
        if isinstance(node, MappingNode):
            result: dict[str, object] = {}
            for k, v in node.value:
                if not isinstance(k, ScalarNode):
                    self.document.problem(k, path, "keys must be strings")
                    continue
                result[k.value] = self._plain(v, childPath(path, k.value), depth + 1)
            return result
        assert isinstance(node, ScalarNode)
        try:
            return self.document.scalar(node)
        except ValueError as e:
            self.document.problem(node, path, str(e))
            return None

    def plain(self) -> Any:
        """
        This whole mapping as plain Python values (without reading it).
        """
        return self._plain(self.node, self.path, 0)

    def section(self, key: str) -> Section:
        """
        The nested mapping under C{key} as a L{Section}; an empty one if
        the key is absent (or, after recording a problem, of another type).
        """
        node = self._take(key)
        path = childPath(self.path, key)
        if isinstance(node, MappingNode):
            return self.document.section(node, path)
        if node is not None:
            self.document.problem(node, path, f"expected a mapping, got {_describeNode(node)}")
        return self.document.synthetic({}, path, quiet=self.quiet or node is not None)

    def sections(self, key: str, single: bool = False) -> list[Section]:
        """
        The list of mappings under C{key} as L{Section}s; empty if absent.
        With C{single}, a lone mapping is accepted as a one-element list.
        """
        node = self._take(key)
        path = childPath(self.path, key)
        if node is None:
            return []
        if single and isinstance(node, MappingNode):
            return [self.document.section(node, path)]
        if not isinstance(node, SequenceNode):
            self.document.problem(node, path, f"expected a list, got {_describeNode(node)}")
            return []
        result = []
        for i, item in enumerate(node.value):
            itemPath = childPath(path, i)
            if isinstance(item, MappingNode):
                result.append(self.document.section(item, itemPath))
            else:
                self.document.problem(
                    item, itemPath, f"expected a mapping, got {_describeNode(item)}"
                )
        return result

    def parseAs(
        self, iface: type[IKindPlugin], protocol: str | None = None, defaultKind: str | None = None
    ) -> PluginConfig | None:
        """
        Dispatch this section on its C{kind} to a plugin of C{iface} and let
        the plugin parse it.  An unknown kind is reported with the supported
        ones, and the section's other keys are then not reported.  When
        C{kind} is absent, C{defaultKind} is used if it is registered (the
        result is C{None} if not: the user asked for nothing).
        """
        kind = self.get("kind", str, defaultKind or REQUIRED)
        if kind is None:
            self.readAll()
            return None
        provider = self.registry.get(iface, kind, protocol)
        if provider is None and not self.has("kind"):
            return None
        if provider is None:
            supported = self.registry.kinds(iface, protocol)
            what = f"{iface.__name__.removeprefix('I').removesuffix('Plugin')} kind"
            if protocol:
                what += f" for protocol {protocol!r}"
            listed = ", ".join(supported) if supported else "none yet"
            self.error(f"{what} {kind!r} is not supported (supported: {listed})", "kind")
            self.readAll()
            return None
        return self.parseWith(provider, provider.parseConfig)

    def parseWith(self, plugin: object, parse: Callable[[Section], object]) -> PluginConfig | None:
        """
        Call a plugin's C{parse} on this section; a plugin that raises is
        reported as a problem, not a traceback.
        """
        before = len(self.document.problems)
        try:
            config = parse(self)
        except Exception as e:
            self.error(f"plugin {type(plugin).__name__} failed to parse this section: {e!r}")
            self.readAll()
            return None
        if len(self.document.problems) > before:
            return None
        return PluginConfig(plugin, config)

    def plugin(
        self,
        key: str,
        iface: type[IKindPlugin],
        default: Mapping[str, object] | None = None,
        protocol: str | None = None,
    ) -> PluginConfig | None:
        """
        The kind-dispatched sub-configuration under C{key}.  If C{key} is
        absent, C{default} (a mapping with a C{kind}) is used when its kind
        is registered; otherwise the result is C{None}.
        """
        if self.has(key):
            section = self.section(key)
            isMapping = isinstance(self._entries[key][1], MappingNode)
            return section.parseAs(iface, protocol) if isMapping else None
        self._take(key)
        if default is None:
            return None
        rest = {k: v for k, v in default.items() if k != "kind"}
        return self.document.synthetic(rest, childPath(self.path, key)).parseAs(
            iface, protocol, str(default["kind"])
        )

    def pluginList(
        self, key: str, iface: type[IKindPlugin], protocol: str | None = None, single: bool = False
    ) -> list[PluginConfig]:
        """
        The list of kind-dispatched sub-configurations under C{key} (with
        C{single}, a lone mapping is accepted too).  Entries with problems
        are left out, after recording the problems.
        """
        parsed = (s.parseAs(iface, protocol) for s in self.sections(key, single))
        return [p for p in parsed if p is not None]

    def reportUnread(self) -> None:
        for key, (keyNode, _) in self._entries.items():
            if key in self._read:
                continue
            message = "unknown key"
            close = difflib.get_close_matches(key, sorted(self._asked), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            self.document.problem(keyNode, childPath(self.path, key), message)
            self._read.add(key)
