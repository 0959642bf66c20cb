# -*- test-case-name: tests.test_namers_rewrite -*-
"""
The C{io.l5d.rewrite} namer: C{/#/<prefix>/<name...>} is matched against
C{pattern} and, if it matches, replaced by the path C{name} with the
captured variables filled in; otherwise it is negative.

    namers:
    - kind: io.l5d.rewrite
      prefix: /rewrite
      pattern: "/{service}/api"
      name: "/srv/{service}"

Each pattern segment is a literal, C{*} (any one segment) or C{{var}}
(any one segment, captured as C{var}).  A pattern matches a name that
starts with its segments; like Linkerd, whatever follows the matched
segments is dropped.  The result is a path, bound again through the dtab.
C{{var}} may appear anywhere inside a segment of C{name}
(C{/srv/{service}.{env}}).
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from twisted.plugin import IPlugin
from zope.interface import implementer

from linkrouter.config import REQUIRED, Section
from linkrouter.interfaces import INamer, INamerPlugin
from linkrouter.naming import NEG, Activity, Leaf, NameTree, ParseError, Path

from ._config import experimental

_VAR = re.compile(r"\{([^{}/]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@attrs.frozen
class Wildcard:
    """C{*}: any one segment."""


@attrs.frozen
class Capture:
    """C{{name}}: any one segment, remembered as C{name}."""

    name: str


Segment = bytes | Wildcard | Capture


def _literal(text: str) -> bytes:
    """One literal path element (C{\\xNN} escapes allowed)."""
    if not text:
        return b""
    path = Path.read("/" + text)
    if len(path) != 1:
        raise ParseError(f"not a path element: {text!r}")
    return path.elems[0]


def _segments(text: str, what: str) -> list[str]:
    if not text.startswith("/"):
        raise ValueError(f"{what} must start with '/': {text!r}")
    parts = text[1:].split("/") if text != "/" else []
    if any(not p for p in parts):
        raise ValueError(f"{what} has an empty segment: {text!r}")
    return parts


@attrs.frozen
class PathPattern:
    """A parsed C{pattern}: see the module docstring."""

    segments: tuple[Segment, ...]

    @classmethod
    def read(cls, text: str) -> PathPattern:
        """
        @raise ValueError: C{text} is not a pattern (the message says why).
        """
        segments: list[Segment] = []
        seen: set[str] = set()
        for part in _segments(text, "pattern"):
            if part == "*":
                segments.append(Wildcard())
            elif part.startswith("{") and part.endswith("}"):
                name = part[1:-1]
                if not _NAME.fullmatch(name):
                    raise ValueError(f"bad variable name {part!r} in pattern {text!r}")
                if name in seen:
                    raise ValueError(f"variable {part!r} appears twice in pattern {text!r}")
                seen.add(name)
                segments.append(Capture(name))
            else:
                try:
                    segments.append(_literal(part))
                except ParseError:
                    raise ValueError(f"bad segment {part!r} in pattern {text!r}") from None
        return cls(tuple(segments))

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(s.name for s in self.segments if isinstance(s, Capture))

    def match(self, path: Path) -> dict[str, bytes] | None:
        """The captured variables if C{path} starts with this pattern, else C{None}."""
        elems = path.elems
        if len(elems) < len(self.segments):
            return None
        captured: dict[str, bytes] = {}
        for segment, elem in zip(self.segments, elems, strict=False):
            if isinstance(segment, Capture):
                captured[segment.name] = elem
            elif isinstance(segment, bytes) and segment != elem:
                return None
        return captured


@attrs.frozen
class PathTemplate:
    """
    A parsed C{name}: per segment, the literal bytes and variable names to
    concatenate.
    """

    segments: tuple[tuple[bytes | Capture, ...], ...]

    @classmethod
    def read(cls, text: str) -> PathTemplate:
        """
        @raise ValueError: C{text} is not a path with C{{var}} references.
        """
        segments = []
        for part in _segments(text, "name"):
            pieces: list[bytes | Capture] = []
            position = 0
            for m in _VAR.finditer(part):
                if not _NAME.fullmatch(m.group(1)):
                    raise ValueError(f"bad variable name {m.group(0)!r} in name {text!r}")
                pieces.append(m.string[position : m.start()].encode())
                pieces.append(Capture(m.group(1)))
                position = m.end()
            pieces.append(part[position:].encode())
            literal = [p.decode() for p in pieces if isinstance(p, bytes)]
            for piece in literal:
                if "{" in piece or "}" in piece:
                    raise ValueError(f"unbalanced braces in name {text!r}")
            try:
                converted = [_literal(p.decode()) if isinstance(p, bytes) else p for p in pieces]
            except ParseError:
                raise ValueError(f"bad segment {part!r} in name {text!r}") from None
            segments.append(tuple(p for p in converted if p != b""))
        return cls(tuple(segments))

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(p.name for s in self.segments for p in s if isinstance(p, Capture))

    def fill(self, values: dict[str, bytes]) -> Path:
        """The path with every variable replaced by its value."""
        return Path(
            *[
                b"".join(p if isinstance(p, bytes) else values[p.name] for p in segment)
                for segment in self.segments
            ]
        )


@implementer(INamer)
@attrs.frozen
class RewriteNamer:
    """Rewrites names matching C{pattern} into C{name}; see the module docstring."""

    pattern: PathPattern
    name: PathTemplate

    def lookup(self, path: Path) -> Activity[NameTree[Any]]:  # type: ignore[override]
        captured = self.pattern.match(path)
        if captured is None:
            return Activity.value(NEG)
        return Activity.value(Leaf(self.name.fill(captured)))


@implementer(IPlugin, INamerPlugin)
class RewriteNamerPlugin:
    kind = "io.l5d.rewrite"
    defaultPrefix = "/io.l5d.rewrite"

    def parseConfig(self, section: Section) -> RewriteNamer | None:  # type: ignore[override]
        experimental(section, self.kind, required=False)
        section.get("prefix", str, REQUIRED)
        patternText = section.get("pattern", str, REQUIRED)
        nameText = section.get("name", str, REQUIRED)
        pattern = name = None
        try:
            pattern = PathPattern.read(patternText) if patternText is not None else None
        except ValueError as e:
            section.error(str(e), "pattern")
        try:
            name = PathTemplate.read(nameText) if nameText is not None else None
        except ValueError as e:
            section.error(str(e), "name")
        if pattern is None or name is None:
            return None
        unknown = sorted(name.variables - pattern.variables)
        if unknown:
            section.error(
                "uses variables the pattern does not capture: "
                + ", ".join("{" + v + "}" for v in unknown),
                "name",
            )
            return None
        return RewriteNamer(pattern, name)

    def build(self, config: RewriteNamer, context: Any) -> RewriteNamer:  # type: ignore[override]
        return config


rewriteNamer = RewriteNamerPlugin()
