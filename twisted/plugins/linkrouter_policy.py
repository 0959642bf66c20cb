"""
Dropin: the built-in HTTP response classifiers.  Providers only, no logic.
"""

from linkrouter.policy.classifiers import (
    allSuccessful,
    nonRetryable5XX,
    retryableAll5XX,
    retryableIdempotent5XX,
    retryableRead5XX,
)

__all__ = [
    "allSuccessful",
    "nonRetryable5XX",
    "retryableAll5XX",
    "retryableIdempotent5XX",
    "retryableRead5XX",
]
