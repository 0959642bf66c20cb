"""
Where the Linkerd example corpus is: C{$LINKROUTER_COMPAT}, or
C{shared/compat} beside the checkout (as the workplace and CI lay it out).
"""

from __future__ import annotations

import os

from twisted.trial.unittest import SkipTest

_BESIDE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "compat")


def compatDir() -> str:
    """The corpus directory; skips the calling test if there is none."""
    found = os.environ.get("LINKROUTER_COMPAT") or os.path.abspath(_BESIDE)
    if not os.path.isdir(found):
        raise SkipTest(f"no Linkerd example corpus at {found} (set LINKROUTER_COMPAT)")
    return found
