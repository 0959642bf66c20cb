# -*- test-case-name: tests.test_routing_router -*-
"""
What an identifier returns: L{Identified} (a destination path, the
per-request dtab, and the request as the identifier may have rewritten it)
or L{Unidentified} (why the request has no name).
"""

from __future__ import annotations

import attrs

from linkrouter.naming import Dtab, Path

_EMPTY_DTAB = Dtab.empty()


@attrs.frozen
class Identified:
    """
    A request named C{dst}.  C{localDtab} holds the request's own dtab
    entries (C{l5d-dtab}, TTwitter delegations), appended to the router's.
    C{request} is the request to forward, when the identifier rewrote it
    (C{io.l5d.path} with C{consume}); C{None} means unchanged.
    """

    dst: Path
    localDtab: Dtab = _EMPTY_DTAB
    request: object = attrs.field(default=None, eq=False)


@attrs.frozen
class Unidentified:
    """A request that could not be named, and why."""

    reason: str


Identification = Identified | Unidentified
