"""
Tests for L{linkrouter.admin.security}: Linkerd's admin path groups and
the C{admin.security} section.
"""

from twisted.trial.unittest import SynchronousTestCase

from linkrouter._plugins import PluginRegistry
from linkrouter.admin import AdminSecurity, compilePatterns, parseAdminSecurity
from linkrouter.admin.security import CONTROL, DIAGNOSTICS, UI, category
from linkrouter.config._section import Document


class CategoryTests(SynchronousTestCase):
    def test_groups(self):
        for path, group in [
            ("/", UI),
            ("/files/css/lib/bootstrap.min.css", UI),
            ("/admin/files/js/x.js", UI),
            ("/config.json", UI),
            ("/admin/metrics.json", UI),
            ("/delegator.json", UI),
            ("/admin/shutdown", CONTROL),
            ("/logging.json", CONTROL),
            ("/admin/ping", DIAGNOSTICS),
            ("/admin/metrics/prometheus", DIAGNOSTICS),
            ("/bound-names.json", DIAGNOSTICS),
            ("/client_state.json", DIAGNOSTICS),
            ("/configXjson", DIAGNOSTICS),
            ("/admin/shutdown/x", DIAGNOSTICS),
        ]:
            self.assertEqual(category(path), group, path)


class AllowsTests(SynchronousTestCase):
    def test_defaultsServeEverything(self):
        security = AdminSecurity()
        for path in ("/", "/admin/shutdown", "/admin/ping", "/anything"):
            self.assertTrue(security.allows(path))

    def test_disabledGroups(self):
        security = AdminSecurity(controlEnabled=False, diagnosticsEnabled=False)
        self.assertTrue(security.allows("/delegator.json"))
        self.assertFalse(security.allows("/admin/shutdown"))
        self.assertFalse(security.allows("/admin/ping"))

    def test_whitelistOpensDisabledGroup(self):
        security = AdminSecurity(
            uiEnabled=False, pathWhitelist=compilePatterns(["/config[.]json", "/admin/m.*"])
        )
        self.assertTrue(security.allows("/config.json"))
        self.assertTrue(security.allows("/admin/metrics.json"))
        self.assertFalse(security.allows("/delegator.json"))

    def test_blacklistClosesEnabledGroup(self):
        """
        A blacklist only applies to enabled groups, and must match the
        whole path.
        """
        security = AdminSecurity(
            diagnosticsEnabled=False,
            pathBlacklist=compilePatterns(["/admin/shutdown", "/config"]),
            pathWhitelist=compilePatterns(["/admin/ping"]),
        )
        self.assertFalse(security.allows("/admin/shutdown"))
        self.assertTrue(security.allows("/config.json"))
        self.assertTrue(security.allows("/admin/ping"))

    def test_badPattern(self):
        e = self.assertRaises(ValueError, compilePatterns, ["/ok", "(unclosed"])
        self.assertIn("invalid regular expression '(unclosed'", str(e))


class ParseTests(SynchronousTestCase):
    def parse(self, text):
        document = Document("linkrouter.yaml", PluginRegistry.fromProviders([]))
        section = document.load(text)
        assert section is not None
        return parseAdminSecurity(section), [str(p) for p in document.problems]

    def test_defaults(self):
        self.assertEqual(self.parse("{}"), (AdminSecurity(), []))

    def test_values(self):
        security, problems = self.parse(
            "uiEnabled: false\ncontrolEnabled: false\npathWhitelist: ['/admin/ping']\n"
        )
        self.assertEqual(problems, [])
        self.assertFalse(security.uiEnabled or security.controlEnabled)
        self.assertTrue(security.allows("/admin/ping"))
        self.assertFalse(security.allows("/admin/shutdown"))

    def test_problems(self):
        """
        Every bad key is reported with its position; the rest is kept.
        """
        security, problems = self.parse(
            "uiEnabled: maybe\npathBlacklist: ['(']\npathWhitelist: [3]\n"
        )
        self.assertEqual(len(problems), 3)
        self.assertIn("linkrouter.yaml:1:", problems[0])
        self.assertIn("invalid regular expression", " ".join(problems))
        self.assertEqual(security, AdminSecurity())
