# -*- test-case-name: tests.test_namers_fs -*-
"""
Configuration helpers shared by the namer plugins.
"""

from __future__ import annotations

import os

from linkrouter.config import Section
from linkrouter.naming import ParseError, Path

HASH = Path(b"#")


def namerIdPrefix(section: Section, default: str) -> Path:
    """
    The prefix of the ids a namer gives its bound names: C{/#} followed by
    the namer's C{prefix} (C{/#/io.l5d.fs}).  The configuration linker
    reports a malformed C{prefix}; here it falls back to C{default}.
    """
    text = section.get("prefix", str, default) or default
    try:
        return HASH + Path.read(text)
    except ParseError:
        return HASH + Path.read(default)


def experimental(section: Section, kind: str, required: bool) -> None:
    """
    Read Linkerd's C{experimental} flag; a kind that C{required} it refuses
    a configuration without C{experimental: true}.
    """
    enabled = section.get("experimental", bool, False)
    if required and enabled is False:
        section.error(
            f"{kind} is experimental: set experimental: true to use it",
            "experimental" if section.has("experimental") else None,
        )


def resolvePath(baseDir: str, path: str) -> str:
    """C{path}, relative to C{baseDir} unless absolute."""
    return os.path.normpath(os.path.join(baseDir, os.path.expanduser(path)))
