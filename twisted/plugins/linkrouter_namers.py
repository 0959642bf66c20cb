"""
Dropin: the built-in namers, transformers and interpreters.  Providers
only, no logic.
"""

from namers.dnssrv import dnsSrvNamer
from namers.fs import fsNamer
from namers.interpreters import defaultInterpreter, fsInterpreter
from namers.rewrite import rewriteNamer
from namers.serversets import serversetsNamer
from namers.transformers import const, localhost, port, replace, specificHost

__all__ = [
    "const",
    "defaultInterpreter",
    "dnsSrvNamer",
    "fsInterpreter",
    "fsNamer",
    "localhost",
    "port",
    "replace",
    "rewriteNamer",
    "serversetsNamer",
    "specificHost",
]
