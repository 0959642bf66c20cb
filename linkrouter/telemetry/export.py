# -*- test-case-name: tests.test_telemetry_export -*-
"""
Rendering the registry as Linkerd does: C{/admin/metrics.json} (flat or
tree), Prometheus text exposition and InfluxDB line protocol.

Renderers are generators of text chunks so that the admin server can write
a large registry a few hundred metrics at a time between reactor turns
(L{linkrouter.admin.StreamingResource}); C{"".join(...)} renders at once.
They work on a copy of the registry's items, so metrics created or removed
meanwhile never disturb them.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import TypeAlias

from .stats import QUANTILES, Counter, Gauge, Histogram, Metric, Names, Number

CHUNK = 256
"""How many metrics a renderer handles between two chunks."""

Items: TypeAlias = "list[tuple[Names, Metric]]"
Labels: TypeAlias = tuple[tuple[str, str], ...]


def flatName(names: Names) -> str:
    return "/".join(names)


def select(items: Items, q: str | None) -> Items | None:
    """
    The metrics under the flat prefix C{q} (Linkerd's C{?q=foo/bar}), with
    that prefix removed from their names; C{None} if there are none.
    """
    if not q:
        return items
    q = q.strip("/")
    selected: Items = []
    for names, metric in items:
        flat = flatName(names)
        if flat.startswith(q + "/"):
            selected.append((_after(names, q, flat), metric))
    return selected or None


def _after(names: tuple[str, ...], q: str, flat: str) -> tuple[str, ...]:
    """
    The segments of C{names} after the flat prefix C{q}: whole segments
    where C{q} ends between two (a segment such as C{127.0.0.1/4140} stays
    one), else the rest split at each C{/}.
    """
    length = -1
    for k, segment in enumerate(names):
        length += len(segment) + 1
        if length == len(q):
            return names[k + 1 :]
        if length > len(q):
            break
    return tuple(flat[len(q) + 1 :].split("/"))


def _jsonNumber(value: Number) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(value) if math.isfinite(value) else "null"


def _finite(value: Number) -> Number | None:
    return value if isinstance(value, int) or math.isfinite(value) else None


def _values(name: str, metric: Metric) -> Iterator[tuple[str, Number]]:
    """C{(flat name, value)} for every number one metric exports."""
    if isinstance(metric, Counter):
        yield name, metric.value
    elif isinstance(metric, Gauge):
        value = metric.read()
        if value is not None:
            yield name, value
    else:
        summary = metric.summary()
        if summary is not None:
            for stat, value in summary.stats():
                yield f"{name}.{stat}", value


def flatJson(items: Items, pretty: bool = False) -> Iterator[str]:
    """
    C{metrics.json}: one JSON object of flat names to numbers.  Histograms
    report their last closed window as C{name.count}, C{.max}, C{.min},
    C{.p50} ... C{.p9999}, C{.sum}, C{.avg} (only C{.count} when it was
    empty; nothing before the first window closed).  C{pretty} sorts and
    indents.
    """
    if pretty:
        entries = {
            k: _finite(v) for names, metric in items for k, v in _values(flatName(names), metric)
        }
        yield json.dumps(entries, indent=2, sort_keys=True)
        return
    yield "{"
    first = True
    for start in range(0, len(items), CHUNK):
        parts = []
        for names, metric in items[start : start + CHUNK]:
            for key, value in _values(flatName(names), metric):
                parts.append(f"{json.dumps(key)}:{_jsonNumber(value)}")
        if parts:
            yield ("" if first else ",") + ",".join(parts)
            first = False
    yield "}"


def treeJson(items: Items) -> Iterator[str]:
    """
    C{metrics.json?tree=1}: nested objects, one level per name segment; a
    metric's own values sit under C{counter}, C{gauge} or C{stat.<stat>}.
    """
    root: dict[str, object] = {}
    for start in range(0, len(items), CHUNK):
        for names, metric in items[start : start + CHUNK]:
            node = root
            for name in names:
                child = node.setdefault(name, {})
                assert isinstance(child, dict)
                node = child
            kind = (
                "counter"
                if isinstance(metric, Counter)
                else "gauge"
                if isinstance(metric, Gauge)
                else "stat"
            )
            for key, value in _values(kind, metric):
                node[key] = _finite(value)
        yield ""
    yield json.dumps(root, separators=(",", ":"))


# Linkerd's exporters turn these name segments into labels: a pattern is
# the label's position (the last element) under fixed parent segments.
_LABEL_RULES: tuple[tuple[Names, str], ...] = (
    (("rt",), "rt"),
    (("rt", "service"), "service"),
    (("rt", "client"), "client"),
    (("rt", "client", "service"), "service"),
    (("rt", "client", "failures"), "exception"),
    (("rt", "client", "exn"), "exception"),
    (("rt", "server"), "server"),
    (("rt", "server", "failures"), "exception"),
    (("rt", "server", "exn"), "exception"),
)


def _rewrite(prefix: Names, labels: Labels) -> tuple[Names, Labels]:
    if prefix[0] != "rt" or len(prefix) > 4:
        return prefix, labels
    parent = prefix[:-1]
    for pattern, label in _LABEL_RULES:
        if parent == pattern and all(k != label for k, _ in labels):
            return parent, (*labels, (label, prefix[-1]))
    return prefix, labels


@functools.lru_cache(maxsize=65536)
def labelled(names: Names) -> tuple[Names, Labels]:
    """
    Split a metric name into the segments that stay in the name and the
    labels Linkerd makes of the others:
    C{("rt", "http", "service", "svc/foo", "requests")} is
    C{("rt", "service", "requests")} with C{rt="http", service="svc/foo"}.
    """
    prefix: Names = ()
    labels: Labels = ()
    for name in names:
        prefix, labels = _rewrite((*prefix, name), labels)
    return prefix, labels


_DISALLOWED_NAME = re.compile(r"[^a-zA-Z0-9:]")


@functools.lru_cache(maxsize=65536)
def _promName(prefix: str, segments: Names) -> str:
    name = _DISALLOWED_NAME.sub("_", prefix + ":".join(segments))
    return "_" + name if name[:1].isdigit() else name


def _promLabelValue(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _promLabels(labels: Labels) -> str:
    if not labels:
        return ""
    # Joined with ", " as Linkerd's telemeter writes them.
    inner = ", ".join(f'{_DISALLOWED_NAME.sub("_", k)}="{_promLabelValue(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _promNumber(value: Number) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


_PROM_QUANTILES: tuple[tuple[str, str], ...] = (
    ("0", "min"),
    *((str(q), name) for name, q in QUANTILES),
    ("1", "max"),
)


def prometheus(items: Items, prefix: str = "") -> Iterator[str]:
    """
    Prometheus text exposition, named as Linkerd's C{io.l5d.prometheus}
    names them: segments joined with C{:}, router/service/client/server
    segments turned into labels, histograms as C{name_count},
    C{name_sum}, C{name_avg} and C{name{quantile="..."}} (0 and 1 are min
    and max; nothing for an empty window).  Samples of one name are
    written together, names in sorted order.
    """
    families: dict[str, list[str]] = {}
    for start in range(0, len(items), CHUNK):
        for names, metric in items[start : start + CHUNK]:
            segments, labels = labelled(names)
            key = _promName(prefix, segments)
            if isinstance(metric, Histogram):
                summary = metric.summary()
                if summary is None or not summary.count:
                    continue
                text = _promLabels(labels)
                for stat, value in (
                    ("count", summary.count),
                    ("sum", summary.sum),
                    ("avg", summary.avg),
                ):
                    families.setdefault(f"{key}_{stat}", []).append(
                        f"{key}_{stat}{text} {_promNumber(value)}\n"
                    )
                lines = families.setdefault(key, [])
                for quantile, stat in _PROM_QUANTILES:
                    value = getattr(summary, stat)
                    qlabels = _promLabels((*labels, ("quantile", quantile)))
                    lines.append(f"{key}{qlabels} {_promNumber(value)}\n")
            else:
                current = metric.value if isinstance(metric, Counter) else metric.read()
                if current is not None:
                    families.setdefault(key, []).append(
                        f"{key}{_promLabels(labels)} {_promNumber(current)}\n"
                    )
        yield ""
    ordered = sorted(families)
    for start in range(0, len(ordered), CHUNK):
        yield "".join("".join(families[name]) for name in ordered[start : start + CHUNK])


_INFLUX_ESCAPE = re.compile(r"([, =\\])")


@functools.lru_cache(maxsize=65536)
def _influxEscape(text: str) -> str:
    return _INFLUX_ESCAPE.sub(r"\\\1", text)


def _influxFields(name: str, metric: Metric) -> Iterable[tuple[str, Number]]:
    if isinstance(metric, Histogram):
        summary = metric.summary()
        if summary is None:
            return ()
        # Linkerd's field names: p9990 is written p999 here.
        return [(f"{name}_{s.replace('p9990', 'p999')}", v) for s, v in summary.stats()]
    value = metric.value if isinstance(metric, Counter) else metric.read()
    return () if value is None or _finite(value) is None else [(name, value)]


def influxdb(items: Items, host: str) -> Iterator[str]:
    """
    InfluxDB line protocol as Linkerd's C{io.l5d.influxdb} writes it: the
    metrics under one parent are the fields of one measurement named by the
    parent's segments joined with C{:} (C{root} at the top), with the same
    labels as Prometheus as tags plus C{host}.
    """
    points: dict[tuple[str, Labels], list[tuple[str, Number]]] = {}
    for start in range(0, len(items), CHUNK):
        for names, metric in items[start : start + CHUNK]:
            segments, labels = labelled(names[:-1])
            measurement = _DISALLOWED_NAME.sub("_", ":".join(segments)) or "root"
            tags = tuple(sorted((*labels, ("host", host))))
            points.setdefault((measurement, tags), []).extend(_influxFields(names[-1], metric))
        yield ""
    lines = []
    for (measurement, tags), fields in points.items():
        if not fields:
            continue
        tagText = "".join(f",{_influxEscape(k)}={_influxEscape(v)}" for k, v in tags)
        fieldText = ",".join(
            f"{_influxEscape(k)}={_promNumber(v)}" for k, v in sorted(fields, key=lambda f: f[0])
        )
        lines.append(f"{measurement}{tagText} {fieldText}\n")
    yield "".join(lines)
