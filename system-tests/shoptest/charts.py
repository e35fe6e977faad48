"""The Helm charts as a cluster would get them: rendered with Helm v4's Go SDK (helm-python-sdk, no
helm binary), as objects, and the pieces several suites read (rules, dashboards, Ingresses)."""

import copy
import json
from pathlib import Path

from shoptest import ROOT

CHARTS = {"cm-server": Path(ROOT) / "helm" / "cm-server", "cm-api": Path(ROOT) / "helm" / "cm-api"}
NAMESPACE = "scalable-shop"
# The charts' metrics objects, off by default.
METRICS_ENABLED = {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}}


def deep_merge(base, override):
    """Helm's way of merging values: maps key by key, anything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def render(chart, values=None, name=None):
    """The chart's objects for these values (what `helm template` prints), hooks included."""
    import helm_python as helm
    import yaml

    manifests = helm.Chart.load(str(CHARTS[chart])).render(
        values or {}, name=name or chart, namespace=NAMESPACE, is_install=True)
    objects = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def of_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


def rule_groups(chart, values=None):
    """The rule groups of the chart's PrometheusRule."""
    [rule] = of_kind(render(chart, values or METRICS_ENABLED), "PrometheusRule")
    return rule["spec"]["groups"]


def dashboard(chart, values=None):
    """(the dashboard's ConfigMap, the Grafana dashboard it carries)."""
    [config_map] = [o for o in of_kind(render(chart, values or METRICS_ENABLED), "ConfigMap")
                    if o["metadata"]["name"].endswith("-dashboard")]
    return config_map, json.loads(config_map["data"][f"{chart}.json"])


def ingresses(host, values=None):
    """The cm-server chart's Ingress objects, rendered with the Ingress on for `host`."""
    return of_kind(render("cm-server", deep_merge({"ingress": {"enabled": True, "host": host}}, values or {})),
                   "Ingress")


# The cm-server chart's values for the front door NGINX Gateway Fabric runs (k8s/README.md): an
# HTTPRoute without Gateway API's rule timeouts, which NGINX Gateway Fabric refuses, and its own
# policies for the read timeout and the body size instead.
NGINX_GATEWAY_FABRIC = {"httpRoute": {"enabled": True, "timeouts": False, "nginxGatewayFabric": {"policies": True}}}
ROUTE_KINDS = ("HTTPRoute", "ProxySettingsPolicy", "ClientSettingsPolicy")


def httproutes(values=None):
    """The cm-server chart's HTTPRoute and NGINX Gateway Fabric policies, rendered with the route
    on as the runbook's values have it."""
    objects = render("cm-server", deep_merge(NGINX_GATEWAY_FABRIC, values or {}))
    return [o for o in objects if o["kind"] in ROUTE_KINDS]
