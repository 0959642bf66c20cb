"""
Every Linkerd example configuration in the compatibility corpus either
passes C{linkrouter check} or is refused with "not supported" problems only,
with the plugins installed in this tree.

As plugins land, files move from refused to passing: edit L{PASSING}.
"""

from __future__ import annotations

import glob
import os

from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.config import ConfigError, loadLinkerConfig

from ._corpus import compatDir

PASSING: set[str] = {
    "linkerd-examples/access-logs.yaml",
    "linkerd-examples/admin-tls.yaml",
    "linkerd-examples/client-options.yaml",
    "linkerd-examples/disable-tls.yaml",
    "linkerd-examples/fs.yaml",
    "linkerd-examples/http.yaml",
    "linkerd-examples/influxdb.yaml",
    "linkerd-examples/loadbalancer.yaml",
    "linkerd-examples/mutualTls.yaml",
    "linkerd-examples/prometheus.yaml",
    "linkerd-examples/proxy.yaml",
    "linkerd-examples/recent-requests.yaml",
    "linkerd-examples/retries.yaml",
    "linkerd-examples/rewriting.yaml",
    "linkerd-examples/service-options.yaml",
    "linkerd-examples/servicemesh.yaml",
    "linkerd-examples/socket-options.yaml",
    "linkerd-examples/static_namer.yaml",
    "linkerd-examples/thrift.yaml",
    "linkerd-examples/tls.yaml",
}
"""Files (relative to the corpus) that must pass; every other one must be refused."""


def corpus() -> list[str]:
    root = compatDir()
    found = glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
    return sorted(os.path.relpath(f, root) for f in found)


class CompatTests(SynchronousTestCase):
    def test_corpus(self) -> None:
        files = corpus()
        root = compatDir()
        registry = PluginRegistry.discover()
        passed, refused, unclear = [], [], []
        for name in files:
            try:
                loadLinkerConfig(os.path.join(root, name), registry)
            except ConfigError as e:
                refused.append(name)
                unclear += [str(p) for p in e.problems if "not supported" not in p.message]
            else:
                passed.append(name)
        self.assertEqual(unclear, [], "refused for another reason than 'not supported'")
        self.assertEqual(sorted(PASSING - set(passed)), [], "expected to pass, refused")
        self.assertEqual(sorted(set(passed) - PASSING), [], "now passing: add to PASSING")
