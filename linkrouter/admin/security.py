# -*- test-case-name: tests.test_admin_security -*-
"""
C{admin.security}: which admin paths are served.

As in Linkerd, every path is in one of three groups: I{ui} (the dashboard
and the read-only JSON it uses), I{control} (C{/admin/shutdown} and
C{/logging.json}, which change the process) and I{diagnostics} (everything
else).  A path is served when its group is enabled and no
C{pathBlacklist} regex matches it, or when its group is disabled but a
C{pathWhitelist} regex matches it.  Regexes must match the whole path.
Refused paths answer 404, exactly like unknown ones.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from linkrouter.config._section import Section

UI = "ui"
CONTROL = "control"
DIAGNOSTICS = "diagnostics"

_UI_PATHS = [
    "/",
    "/files/.*",
    "/admin/files/.*",
    "/config[.]json",
    "/metrics[.]json",
    "/admin/metrics[.]json",
    "/admin/metrics",
    "/delegator",
    "/delegator[.]json",
    "/logging",
    "/help",
]
_CONTROL_PATHS = ["/admin/shutdown", "/logging[.]json"]

_UI = re.compile("|".join(f"(?:{p})" for p in _UI_PATHS))
_CONTROL = re.compile("|".join(f"(?:{p})" for p in _CONTROL_PATHS))


def category(path: str) -> str:
    """The group of C{path}: L{UI}, L{CONTROL} or L{DIAGNOSTICS}."""
    if _UI.fullmatch(path):
        return UI
    if _CONTROL.fullmatch(path):
        return CONTROL
    return DIAGNOSTICS


@attrs.frozen
class AdminSecurity:
    """The C{admin.security} section; the defaults serve everything."""

    uiEnabled: bool = True
    controlEnabled: bool = True
    diagnosticsEnabled: bool = True
    pathWhitelist: tuple[re.Pattern[str], ...] = ()
    pathBlacklist: tuple[re.Pattern[str], ...] = ()

    def allows(self, path: str) -> bool:
        enabled = {
            UI: self.uiEnabled,
            CONTROL: self.controlEnabled,
            DIAGNOSTICS: self.diagnosticsEnabled,
        }[category(path)]
        if enabled:
            return not any(p.fullmatch(path) for p in self.pathBlacklist)
        return any(p.fullmatch(path) for p in self.pathWhitelist)


def compilePatterns(patterns: list[str]) -> tuple[re.Pattern[str], ...]:
    """
    Compile path regexes.

    @raise ValueError: naming the first pattern that does not compile.
    """
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as e:
            raise ValueError(f"invalid regular expression {pattern!r}: {e}") from None
    return tuple(compiled)


def parseAdminSecurity(section: Section) -> AdminSecurity:
    """
    Read an C{admin.security} section.  Problems are reported on the
    section; the keys in error keep their defaults.
    """

    def enabled(key: str) -> bool:
        value = section.get(key, bool, True)
        return True if value is None else value

    def patterns(key: str) -> tuple[re.Pattern[str], ...]:
        texts = section.get(key, list, [])
        if not texts:
            return ()
        if not all(isinstance(p, str) for p in texts):
            section.error("must be a list of strings (regular expressions)", key)
            return ()
        try:
            return compilePatterns(texts)
        except ValueError as e:
            section.error(str(e), key)
            return ()

    return AdminSecurity(
        uiEnabled=enabled("uiEnabled"),
        controlEnabled=enabled("controlEnabled"),
        diagnosticsEnabled=enabled("diagnosticsEnabled"),
        pathWhitelist=patterns("pathWhitelist"),
        pathBlacklist=patterns("pathBlacklist"),
    )
