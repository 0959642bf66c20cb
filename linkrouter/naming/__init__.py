"""
The naming core: paths, name trees, dtabs, observable values, bound names,
the interpreter and delegation explanations.  See docs/architecture.md,
"Naming API".
"""

from .addr import (
    ADDR_NEG,
    ADDR_PENDING,
    Addr,
    AddrBound,
    Address,
    AddrFailed,
    Bound,
    authority,
)
from .delegate import (
    DelegateAlt,
    DelegateDelegate,
    DelegateEmpty,
    DelegateException,
    DelegateFail,
    DelegateLeaf,
    DelegateNeg,
    DelegateTree,
    DelegateUnion,
    DelegateWeighted,
    DelegationTooDeep,
    delegateJson,
    explain,
)
from .dtab import ANY_ELEM, NOP, Dentry, Dtab, Prefix
from .interpreter import ConfiguredNamersInterpreter, NamerExceededMaxDepth
from .nametree import EMPTY, FAIL, NEG, Alt, Leaf, NameTree, Union, Weighted
from .path import ParseError, Path
from .system import Resolver, UnknownNamer, reactorResolver
from .var import PENDING, Activity, Closable, Failed, Ok, Pending, State, Var

__all__ = [
    "ADDR_NEG",
    "ADDR_PENDING",
    "ANY_ELEM",
    "EMPTY",
    "FAIL",
    "NEG",
    "NOP",
    "PENDING",
    "Activity",
    "Addr",
    "AddrBound",
    "AddrFailed",
    "Address",
    "Alt",
    "Bound",
    "Closable",
    "ConfiguredNamersInterpreter",
    "DelegateAlt",
    "DelegateDelegate",
    "DelegateEmpty",
    "DelegateException",
    "DelegateFail",
    "DelegateLeaf",
    "DelegateNeg",
    "DelegateTree",
    "DelegateUnion",
    "DelegateWeighted",
    "DelegationTooDeep",
    "Dentry",
    "Dtab",
    "Failed",
    "Leaf",
    "NameTree",
    "NamerExceededMaxDepth",
    "Ok",
    "ParseError",
    "Path",
    "Pending",
    "Prefix",
    "Resolver",
    "State",
    "Union",
    "UnknownNamer",
    "Var",
    "Weighted",
    "authority",
    "delegateJson",
    "explain",
    "reactorResolver",
]
