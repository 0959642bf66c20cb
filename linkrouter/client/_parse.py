"""
A bounded-number reader shared by the client stack's configuration parsers.
"""

from __future__ import annotations

from typing import Any

from linkrouter.config import REQUIRED, Section


def getNumber(
    section: Section,
    key: str,
    default: float | None,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
) -> Any:
    """
    Read a number under C{key}: C{default} when absent (C{None} makes the
    key required).  A value outside C{[low, high]} is reported and
    C{default} returned.
    """
    value = section.get(
        key, int if integer else (int, float), REQUIRED if default is None else default
    )
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            section.error("expected a number, got a boolean", key)
        return default
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        section.error(f"must be {bounds}, not {value}", key)
        return default
    return value
