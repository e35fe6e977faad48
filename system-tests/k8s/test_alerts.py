"""The alerts and dashboards the charts ship (run by `make test`, needs Debian's `prometheus` for
promtool): each chart's PrometheusRule, rendered with its defaults, passes `promtool check rules`
and the unit tests in alerts/ (every alert firing on the series it is about, and not on its
neighbours'); every alert carries a summary, a description and a runbook section that exists in
k8s/README.md; every dashboard panel's query parses. Whether the queries find the metrics the
services really export is system-tests/monitoring's job, against a real Prometheus.
"""

import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

import yaml

from shoptest import ROOT
from shoptest.charts import CHARTS, dashboard, of_kind, render, rule_groups

ALERT_TESTS = Path(__file__).resolve().parent / "alerts"


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def promtool(*arguments, cwd):
    done = subprocess.run(["promtool", *arguments], cwd=cwd, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


class AlertTests(unittest.TestCase):
    def test_the_rules_pass_promtool_check_and_their_unit_tests(self):
        for chart in CHARTS:
            with self.subTest(chart=chart), tempfile.TemporaryDirectory() as folder:
                Path(folder, f"{chart}.rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(chart)}))
                shutil.copy(ALERT_TESTS / f"{chart}.test.yaml", folder)
                code, output = promtool("check", "rules", f"{chart}.rules.yaml", cwd=folder)
                self.assertEqual(code, 0, output)
                code, output = promtool("test", "rules", f"{chart}.test.yaml", cwd=folder)
                self.assertEqual(code, 0, output)

    def test_every_alert_is_unit_tested(self):
        for chart in CHARTS:
            tests = yaml.safe_load((ALERT_TESTS / f"{chart}.test.yaml").read_text())["tests"]
            tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
                      if case["exp_alerts"]}
            alerts = {rule["alert"] for group in rule_groups(chart) for rule in group["rules"]}
            self.assertEqual(alerts - tested, set(), f"{chart}: alerts no unit test sees firing")

    def test_every_alert_has_a_summary_a_description_a_severity_and_a_runbook_section(self):
        anchors, fenced = set(), False
        for line in (Path(ROOT) / "k8s" / "README.md").read_text().splitlines():
            fenced ^= line.startswith("```")
            if line.startswith("#") and not fenced:
                anchors.add(github_anchor(line.lstrip("#")))
        for chart in CHARTS:
            for group in rule_groups(chart):
                for rule in group["rules"]:
                    with self.subTest(chart=chart, alert=rule["alert"]):
                        annotations = rule["annotations"]
                        self.assertTrue(annotations.get("summary") and annotations.get("description"))
                        self.assertIn(rule["labels"]["severity"], ("warning", "critical"))
                        url, _, anchor = annotations["runbook_url"].partition("#")
                        self.assertEqual(url, "https://github.com/scalable-shop/scalable-shop/blob/main/k8s/README.md")
                        self.assertEqual(anchor, rule["alert"].lower())
                        self.assertIn(anchor, anchors, "k8s/README.md has no runbook section for it")

    def test_thresholds_and_labels_come_from_values(self):
        values = {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "prometheus"},
                                                 "freshnessObjectiveSeconds": 300,
                                                 "runbookUrl": "https://runbooks.example.com/shop"}}}
        objects = render("cm-api", values)
        [rule] = of_kind(objects, "PrometheusRule")
        self.assertEqual(rule["metadata"]["labels"]["release"], "prometheus")
        rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
        self.assertTrue(rules["CmApiFreshnessObjectiveMissed"]["expr"].endswith("> 300"))
        self.assertEqual(rules["CmApiBroken"]["annotations"]["runbook_url"],
                         "https://runbooks.example.com/shop#cmapibroken")

    def test_nothing_is_rendered_unless_asked_for(self):
        for chart in CHARTS:
            objects = render(chart)
            self.assertEqual(of_kind(objects, "PrometheusRule"), [])
            self.assertEqual([o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].endswith("-dashboard")],
                             [])


class DashboardTests(unittest.TestCase):
    def test_the_dashboards_reach_grafanas_sidecar_and_every_query_parses(self):
        for chart in CHARTS:
            config_map, board = dashboard(chart)
            with self.subTest(chart=chart):
                self.assertEqual(config_map["metadata"]["labels"]["grafana_dashboard"], "1")
                self.assertEqual(board["uid"], f"scalable-shop-{chart}")
                panels = board["panels"]
                self.assertEqual(len({p["id"] for p in panels}), len(panels))
                expressions = [t["expr"] for p in panels for t in p["targets"]]
                self.assertTrue(all(p["targets"] for p in panels))
                self.assertTrue(all(p["datasource"]["uid"] == "${datasource}" for p in panels))
                with tempfile.TemporaryDirectory() as folder:
                    rules = [{"record": f"panel:{n}", "expr": e} for n, e in enumerate(expressions)]
                    Path(folder, "panels.yaml").write_text(yaml.safe_dump({"groups": [{"name": "p", "rules": rules}]}))
                    code, output = promtool("check", "rules", "panels.yaml", cwd=folder)
                    self.assertEqual(code, 0, output)


if __name__ == "__main__":
    unittest.main()
