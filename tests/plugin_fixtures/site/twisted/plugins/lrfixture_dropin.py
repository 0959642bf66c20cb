"""A third party's dropin: module-level providers only."""

from lrfixture import (  # type: ignore[import-not-found]
    configuredInterpreter,
    lineProtocol,
    staticNamer,
)

__all__ = ["configuredInterpreter", "lineProtocol", "staticNamer"]
