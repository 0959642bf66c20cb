# -*- test-case-name: tests.test_routing_router -*-
"""
Delegation trees as indented text, for the body of router-made "No hosts
are available" replies: the steps from the requested path to each dead end.
"""

from __future__ import annotations

from typing import Any


def explainDelegation(node: dict[str, Any]) -> str:
    """
    Render a C{/delegator.json} node (L{linkrouter.naming.delegateJson}) as
    one line per step, children indented under their parent.
    """
    lines: list[str] = []
    _render(node, 0, lines)
    return "\n".join(lines)


def _render(node: dict[str, Any], depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    kind = node.get("type", "?")
    path = node.get("path", "")
    dentry = node.get("dentry")
    via = f"  (via {dentry['prefix']}=>{dentry['dst']})" if dentry else ""
    if kind == "leaf":
        bound = node.get("bound", {})
        lines.append(f"{indent}{path}{via} -> bound {bound.get('id', '?')}: {_addr(bound)}")
    elif kind == "exception":
        lines.append(f"{indent}{path}{via} -> error: {node.get('message', '')}")
    elif kind in ("neg", "fail", "empty"):
        word = {"neg": "no match (~)", "fail": "fail (!)", "empty": "empty ($)"}[kind]
        lines.append(f"{indent}{path}{via} -> {word}")
    elif kind == "delegate":
        lines.append(f"{indent}{path}{via}")
        _render(node["delegate"], depth + 1, lines)
    elif kind == "alt":
        lines.append(f"{indent}{path}{via} -> first of:")
        for child in node.get("alt", []):
            _render(child, depth + 1, lines)
    elif kind == "union":
        lines.append(f"{indent}{path}{via} -> union of:")
        for child in node.get("union", []):
            lines.append(f"{indent}  weight {child.get('weight')}:")
            _render(child["tree"], depth + 2, lines)
    elif kind == "transformation":
        lines.append(f"{indent}{path} -> transformed by {node.get('name', '?')}")
        _render(node["tree"], depth + 1, lines)
    else:
        lines.append(f"{indent}{path}{via} -> {kind}")


def _addr(bound: dict[str, Any]) -> str:
    addr = bound.get("addr", {})
    kind = addr.get("type")
    if kind == "bound":
        addrs = addr.get("addrs", [])
        if not addrs:
            return "no addresses"
        return ", ".join(f"{a.get('ip')}:{a.get('port')}" for a in addrs)
    if kind == "failed":
        return f"failed: {addr.get('cause', '')}"
    return str(kind)
