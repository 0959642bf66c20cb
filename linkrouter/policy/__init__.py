"""
Service policy: response classifiers, retries within a budget, backoffs,
total timeouts and propagated deadlines.  See docs/architecture.md.
"""

from linkrouter.policy.backoff import Backoff, BackoffFactory, constant, jittered
from linkrouter.policy.classifiers import (
    DEFAULT_HTTP_CLASSIFIER,
    AllSuccessful,
    FirstOpinion,
    RetryableHeader,
    ServerErrors,
    classifyOrDefault,
    httpClassifier,
    isRetryableException,
)
from linkrouter.policy.retries import RetryingClient
from linkrouter.policy.timeouts import (
    DEADLINE_HEADER,
    Deadline,
    DeadlineExceeded,
    RequestAttemptTimeout,
    RequestTimeout,
    TotalTimeout,
    outgoingDeadline,
    readDeadline,
    withTimeout,
)

__all__ = [
    "DEADLINE_HEADER",
    "DEFAULT_HTTP_CLASSIFIER",
    "AllSuccessful",
    "Backoff",
    "BackoffFactory",
    "Deadline",
    "DeadlineExceeded",
    "FirstOpinion",
    "RequestAttemptTimeout",
    "RequestTimeout",
    "RetryableHeader",
    "RetryingClient",
    "ServerErrors",
    "TotalTimeout",
    "classifyOrDefault",
    "constant",
    "httpClassifier",
    "isRetryableException",
    "jittered",
    "outgoingDeadline",
    "readDeadline",
    "withTimeout",
]
