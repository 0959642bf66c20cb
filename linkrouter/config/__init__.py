"""
Configuration: YAML/JSON documents with positions, L{Section} (the reader
every plugin parses its section with) and Linkerd's top-level schema.  See
docs/architecture.md, "Configuration API".
"""

from linkrouter.config._linker import (
    AdminConfig,
    BindingCacheConfig,
    InterpreterConfig,
    LinkerConfig,
    NamerEntry,
    RouterConfig,
    ServerConfig,
    loadLinkerConfig,
    parseLinkerConfig,
)
from linkrouter.config._policy import (
    Backoff,
    ClientParams,
    HostConnectionPool,
    PrefixedPolicy,
    PrefixPattern,
    Retries,
    RetryBudget,
    ServiceParams,
    Session,
    SocketOptions,
)
from linkrouter.config._section import (
    REQUIRED,
    ConfigError,
    Document,
    PluginConfig,
    Problem,
    Section,
)

__all__ = [
    "REQUIRED",
    "AdminConfig",
    "Backoff",
    "BindingCacheConfig",
    "ClientParams",
    "ConfigError",
    "Document",
    "HostConnectionPool",
    "InterpreterConfig",
    "LinkerConfig",
    "NamerEntry",
    "PluginConfig",
    "PrefixPattern",
    "PrefixedPolicy",
    "Problem",
    "Retries",
    "RetryBudget",
    "RouterConfig",
    "Section",
    "ServerConfig",
    "ServiceParams",
    "Session",
    "SocketOptions",
    "loadLinkerConfig",
    "parseLinkerConfig",
]
