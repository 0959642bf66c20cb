"""
Tests for L{linkrouter.telemetry.export}: metrics.json, Prometheus and
InfluxDB renderings, against Linkerd's own examples.
"""

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from linkrouter.telemetry import MetricsRegistry
from linkrouter.telemetry.export import (
    CHUNK,
    flatJson,
    influxdb,
    labelled,
    prometheus,
    select,
    treeJson,
)


def selected(items, q):
    result = select(items, q)
    assert result is not None
    return result


def render(chunks):
    return "".join(chunks)


class Fixture(SynchronousTestCase):
    def setUp(self):
        self.registry = MetricsRegistry()
        self.stats = self.registry.statsReceiver()

    def items(self):
        return self.registry.items()


class MetricsJsonTests(Fixture):
    def flat(self, **kwargs):
        return render(flatJson(self.items(), **kwargs))

    def test_counterAndGauge(self):
        self.stats.scope("foo", "bar").counter("bas").incr()
        self.assertEqual(self.flat(), '{"foo/bar/bas":1}')
        self.stats.scope("foo", "bar").addGauge(("g",), lambda: 2.0)
        self.assertEqual(json.loads(self.flat()), {"foo/bar/bas": 1, "foo/bar/g": 2.0})

    def test_histogramServedFromLastWindow(self):
        """
        Nothing before the first window closes, then the last window's
        summary with Linkerd's suffixes, in Linkerd's order.
        """
        stat = self.stats.scope("foo", "bar").histogram("bas")
        stat.add(1)
        self.assertEqual(self.flat(), "{}")
        self.registry.snapshot()
        stat.add(2)
        expected = (
            '{"foo/bar/bas.count":1,"foo/bar/bas.max":1,"foo/bar/bas.min":1,'
            '"foo/bar/bas.p50":1,"foo/bar/bas.p90":1,"foo/bar/bas.p95":1,'
            '"foo/bar/bas.p99":1,"foo/bar/bas.p9990":1,"foo/bar/bas.p9999":1,'
            '"foo/bar/bas.sum":1,"foo/bar/bas.avg":1.0}'
        )
        self.assertEqual(self.flat(), expected)
        self.registry.snapshot()
        self.registry.snapshot()
        self.assertEqual(self.flat(), '{"foo/bar/bas.count":0}')

    def test_nonFiniteGauge(self):
        self.stats.addGauge(("nan",), lambda: float("nan"))
        self.assertEqual(json.loads(self.flat()), {"nan": None})
        self.assertEqual(json.loads(self.flat(pretty=True)), {"nan": None})

    def test_pretty(self):
        self.stats.counter("b").incr()
        self.stats.counter("a").incr(2)
        self.assertEqual(self.flat(pretty=True), '{\n  "a": 2,\n  "b": 1\n}')

    def test_manyMetricsInChunks(self):
        """
        A large registry renders in several chunks into one valid object.
        """
        for n in range(3 * CHUNK):
            self.stats.counter("c", str(n)).incr(n)
        chunks = list(flatJson(self.items()))
        self.assertGreater(len(chunks), 3)
        self.assertEqual(len(json.loads("".join(chunks))), 3 * CHUNK)

    def test_tree(self):
        self.stats.scope("foo", "bar").counter("bas").incr()
        self.assertEqual(render(treeJson(self.items())), '{"foo":{"bar":{"bas":{"counter":1}}}}')

    def test_treeStat(self):
        self.stats.histogram("h").add(3)
        self.registry.snapshot()
        tree = json.loads(render(treeJson(self.items())))
        self.assertEqual(tree["h"]["stat.count"], 1)
        self.assertEqual(tree["h"]["stat.p99"], 3)

    def test_subtreeSelector(self):
        """
        C{q} selects a subtree by flat prefix, even across a segment that
        contains slashes.
        """
        self.stats.scope("foo", "bar").counter("bas").incr()
        self.stats.scope("foo", "bar").counter("bass").incr()
        self.stats.scope("x", "y").counter("z").incr()
        self.stats.scope("rt", "http", "server", "127.0.0.1/4140").counter("requests").incr()
        self.assertEqual(render(flatJson(selected(self.items(), "foo/bar"))), '{"bas":1,"bass":1}')
        self.assertEqual(
            render(treeJson(selected(self.items(), "foo/bar"))),
            '{"bas":{"counter":1},"bass":{"counter":1}}',
        )
        server = selected(self.items(), "rt/http/server/127.0.0.1")
        self.assertEqual(render(flatJson(server)), '{"4140/requests":1}')
        self.assertIsNone(select(self.items(), "nope"))
        items = self.items()
        self.assertIs(select(items, None), items)


class PrometheusTests(Fixture):
    def prom(self, prefix=""):
        text = render(prometheus(self.items(), prefix))
        samples = [
            (s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
        return text, samples

    def test_counterAndGauge(self):
        self.stats.scope("foo", "bar").counter("bas").incr()
        self.assertEqual(self.prom()[0], "foo:bar:bas 1\n")
        self.stats.scope("foo", "bar").addGauge(("g",), lambda: 1.0)
        self.assertEqual(self.prom()[0], "foo:bar:bas 1\nfoo:bar:g 1.0\n")

    def test_stat(self):
        stat = self.stats.scope("foo", "bar").histogram("bas")
        stat.add(1)
        stat.add(2)
        self.assertEqual(self.prom()[0], "")
        self.registry.snapshot()
        text, samples = self.prom()
        self.assertEqual(
            text,
            "foo:bar:bas"
            + "".join(
                f'{{quantile="{q}"}} {v}\nfoo:bar:bas'
                for q, v in [
                    ("0", 1),
                    ("0.5", 1),
                    ("0.9", 2),
                    ("0.95", 2),
                    ("0.99", 2),
                    ("0.999", 2),
                    ("0.9999", 2),
                ]
            )
            + '{quantile="1"} 2\n'
            + "foo:bar:bas_avg 1.5\nfoo:bar:bas_count 2\nfoo:bar:bas_sum 3\n",
        )
        self.assertIn(("foo:bar:bas", {"quantile": "0.99"}, 2.0), samples)

    def test_routerLabels(self):
        """
        Router, service, client, server and exception segments become
        labels, as in Linkerd.
        """
        rt = self.stats.scope("rt", "incoming")
        rt.scope("service", "svc/foo").counter("requests").incr()
        rt.scope("client", "$/inet/127.1/9990").counter("requests").incr(2)
        rt.scope("client", "$/inet/127.1/9990", "service", "svc/foo").counter("requests").incr(3)
        rt.scope("server", "127.0.0.1/4141").counter("requests").incr(4)
        rt.scope("server", "127.0.0.1/4141", "failures").counter("com.Foo").incr(5)
        text, samples = self.prom()
        self.assertEqual(
            sorted(samples, key=lambda s: s[2]),
            [
                ("rt:service:requests", {"rt": "incoming", "service": "svc/foo"}, 1.0),
                ("rt:client:requests", {"rt": "incoming", "client": "$/inet/127.1/9990"}, 2.0),
                (
                    "rt:client:service:requests",
                    {"rt": "incoming", "client": "$/inet/127.1/9990", "service": "svc/foo"},
                    3.0,
                ),
                ("rt:server:requests", {"rt": "incoming", "server": "127.0.0.1/4141"}, 4.0),
                (
                    "rt:server:failures",
                    {"rt": "incoming", "server": "127.0.0.1/4141", "exception": "com.Foo"},
                    5.0,
                ),
            ],
        )
        self.assertIn('rt:service:requests{rt="incoming", service="svc/foo"} 1\n', text)

    def test_labelled(self):
        self.assertEqual(
            labelled(("rt", "http", "service", "svc/foo", "requests")),
            (("rt", "service", "requests"), (("rt", "http"), ("service", "svc/foo"))),
        )
        self.assertEqual(labelled(("jvm", "uptime")), (("jvm", "uptime"), ()))

    def test_escaping(self):
        """
        Awkward names and label values still give valid exposition text.
        """
        self.stats.scope("rt", 'we"ird\\rt\n', "service", "a b").counter("req-uests").incr()
        self.stats.counter("9lives").incr()
        self.stats.addGauge(("inf",), lambda: float("inf"))
        _, samples = self.prom(prefix="l5d.")
        self.assertIn(
            ("l5d_rt:service:req_uests", {"rt": 'we"ird\\rt\n', "service": "a b"}, 1.0), samples
        )
        self.assertIn(("l5d_9lives", {}, 1.0), samples)
        self.assertIn(("l5d_inf", {}, float("inf")), samples)
        self.assertEqual(self.prom()[1][0][0], "_9lives")

    def test_familiesAreContiguous(self):
        """
        Samples of one metric name from different routers are written
        together.
        """
        for label in ("a", "b"):
            self.stats.scope("rt", label).counter("requests").incr()
            self.stats.scope("rt", label).counter("connects").incr()
        names = [line.split("{")[0] for line in self.prom()[0].splitlines()]
        self.assertEqual(names, ["rt:connects", "rt:connects", "rt:requests", "rt:requests"])


class InfluxDbTests(Fixture):
    def influx(self, host="none"):
        return render(influxdb(self.items(), host))

    def test_siblingsAreFields(self):
        self.stats.scope("foo", "bar").counter("bas").incr()
        self.assertEqual(self.influx(), "foo:bar,host=none bas=1\n")
        self.stats.counter("abc").incr()
        self.stats.counter("def").incr(2)
        self.stats.addGauge(("g",), lambda: 1.0)
        self.assertEqual(
            self.influx(), "foo:bar,host=none bas=1\nroot,host=none abc=1,def=2,g=1.0\n"
        )

    def test_stat(self):
        stat = self.stats.scope("foo", "bar").histogram("bas")
        stat.add(1)
        self.assertEqual(self.influx(), "")
        self.registry.snapshot()
        stat.add(1)
        stat.add(2)
        self.registry.snapshot()
        self.assertEqual(
            self.influx(),
            "foo:bar,host=none bas_avg=1.5,bas_count=2,bas_max=2,bas_min=1,bas_p50=1,"
            "bas_p90=2,bas_p95=2,bas_p99=2,bas_p999=2,bas_p9999=2,bas_sum=3\n",
        )

    def test_labelsAreTags(self):
        rt = self.stats.scope("rt", "incoming")
        rt.scope("client", "/#/bar", "service", "/svc/foo").counter("requests").incr()
        rt.scope("server", "127.0.0.1/4141").counter("requests").incr()
        self.assertEqual(
            self.influx(host="l5d:9990"),
            "rt:client:service,client=/#/bar,host=l5d:9990,rt=incoming,service=/svc/foo"
            " requests=1\n"
            "rt:server,host=l5d:9990,rt=incoming,server=127.0.0.1/4141 requests=1\n",
        )

    def test_escaping(self):
        self.stats.scope("rt", "a b,c=d").counter("x y").incr()
        self.stats.addGauge(("nan",), lambda: float("nan"))
        self.assertEqual(self.influx(), "rt,host=none,rt=a\\ b\\,c\\=d x\\ y=1\n")
