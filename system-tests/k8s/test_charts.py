"""The Kubernetes artefacts, checked without a cluster (run by `make test`).

Real Helm (helm-python-sdk embeds Helm v4's Go SDK) lints and renders both charts with their
defaults and with every optional feature on; every rendered object is validated against the
Kubernetes schemas of the oldest supported (1.30) and the newest known version, KEDA objects
against KEDA's CRD schemas in schemas/keda/ beside this file. Then the promises the charts make are
checked on what they render: hardening, probes, resources, shutdown bounds, credentials only from
Secrets, autoscaling within the topic's partitions, and agreement with the services' own
configuration, the Dockerfile and the cluster pieces in k8s/.
"""

import os
import json
import re
import subprocess
import unittest
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

from shoptest import charts
from shoptest.charts import CHARTS, NAMESPACE, deep_merge, of_kind, render

ROOT = Path(__file__).resolve().parents[2]
# KEDA's CRDs (see schemas/keda/README.md for where they come from).
KEDA_CRDS = Path(__file__).resolve().parent / "schemas" / "keda"
# Gateway API v1.6.1's standard CRDs and NGINX Gateway Fabric 2.6.7's policy CRDs (their READMEs
# say where they come from).
CRD_FILES = {
    "HTTPRoute": "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
    "Gateway": "gateway-api/gateway.networking.k8s.io_gateways.yaml",
    "ProxySettingsPolicy": "nginx-gateway-fabric/gateway.nginx.org_proxysettingspolicies.yaml",
    "ClientSettingsPolicy": "nginx-gateway-fabric/gateway.nginx.org_clientsettingspolicies.yaml",
}
CRD_GROUPS = ("gateway.networking.k8s.io/", "gateway.nginx.org/")
# The original README's public URLs and the path cm-server must see for each, through the
# Ingress and through the HTTPRoute alike.
PUBLIC_PATHS = {
    "/scalable-shop-cm-server/buy": "/buy",
    "/scalable-shop-cm-server/getAllUserBuys/joe": "/getAllUserBuys/joe",
    "/scalable-shop-cm-server/getAllUserBuys/a/b": "/getAllUserBuys/a/b",
    "/scalable-shop-cm-server/shop.js": "/shop.js",
    "/scalable-shop-cm-server/shop.css": "/shop.css",
    "/scalable-shop-cm-server/": "/",
}
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]

# Every optional feature on, and the credentials made by the chart instead of an existing Secret.
ALL_FEATURES = {
    "cm-server": {
        "credentials": {"existingSecret": "", "kafkaUsername": "cm-server", "kafkaPassword": "s3cret"},
        "kafka": {"tls": {"enabled": True, "caSecret": {"name": "kafka-ca", "key": "ca.crt"}}},
        "ingress": {"enabled": True, "host": "shop.example.com",
                    "tls": {"enabled": True, "secretName": "shop-tls"}},
        "httpRoute": {"enabled": True, "hostnames": ["shop.example.com"]},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                    "prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}},
        "autoscaling": {"enabled": True, "type": "keda"},
        "imagePullSecrets": [{"name": "registry"}],
        "tracing": {"endpoint": "http://otel-collector.observability.svc:4318",
                    "resourceAttributes": {"deployment.environment.name": "production"}},
    },
    "cm-api": {
        "credentials": {"existingSecret": "", "mongodbUri": "mongodb://cm-api:pw@mongo:27017/admin",
                        "kafkaUsername": "cm-api", "kafkaPassword": "s3cret"},
        "kafka": {"tls": {"enabled": True, "caSecret": {"name": "kafka-ca", "key": "ca.crt"}}},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                    "dashboard": {"enabled": True}},
        "imagePullSecrets": [{"name": "registry"}],
        "tracing": {"endpoint": "http://otel-collector.observability.svc:4318", "sampler": "always_on"},
    },
}
# The other branches: CPU autoscaling, no SASL, no autoscaling, ingress without TLS.
VARIANTS = {
    "cm-server": [
        {"autoscaling": {"enabled": True, "type": "cpu"}},
        {"kafka": {"sasl": {"enabled": False}}, "ingress": {"enabled": True, "host": "shop.example.com"}},
        # NGINX Gateway Fabric's route and policies, with HS256 keys.
        {"httpRoute": {"enabled": True, "timeouts": False, "nginxGatewayFabric": {"policies": True}},
         "auth": {"jwksConfigMap": {"name": ""}}},
    ],
    "cm-api": [
        {"autoscaling": {"enabled": False}},
        {"kafka": {"sasl": {"enabled": False}}, "auth": {"jwksConfigMap": {"name": ""}}},
    ],
}


def configurations(chart):
    """(label, values) for every configuration the tests render."""
    yield "defaults", {}
    yield "all features", ALL_FEATURES[chart]
    for index, variant in enumerate(VARIANTS[chart]):
        yield f"variant {index}", variant


def pod_specs(objects):
    """(object name, pod spec) for Deployments and helm test Pods."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield obj["metadata"]["name"], obj["spec"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def collector_http_port():
    """The OTLP/HTTP port of the Collector chart k8s/otel-collector/values.yaml configures (the chart's
    default, 4318, unless the values change it)."""
    values = yaml.safe_load((ROOT / "k8s" / "otel-collector" / "values.yaml").read_text())
    return values["ports"]["otlp-http"].get("servicePort", 4318)


def chart_app_version(chart):
    return yaml.safe_load((ROOT / "helm" / chart / "Chart.yaml").read_text())["appVersion"]


def runbook_gateway():
    """The Gateway of k8s/nginx-gateway/gateway.yaml."""
    documents = yaml.safe_load_all((ROOT / "k8s" / "nginx-gateway" / "gateway.yaml").read_text())
    return next(d for d in documents if d["kind"] == "Gateway")


def crd_schema(kind, version):
    """The openAPIV3Schema of `kind` at `version` from the CRD copies in schemas/."""
    crd = yaml.safe_load((Path(__file__).resolve().parent / "schemas" / CRD_FILES[kind]).read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return served["schema"]["openAPIV3Schema"]


def keda_schema(kind):
    file = {"ScaledObject": "keda.sh_scaledobjects.yaml",
            "TriggerAuthentication": "keda.sh_triggerauthentications.yaml"}[kind]
    crd = yaml.safe_load((KEDA_CRDS / file).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    return version["schema"]["openAPIV3Schema"]


def unknown_fields(instance, schema, path=""):
    """Fields the structural schema does not declare: the API server would drop them silently
    (or refuse them with strict field validation), so a typo would change nothing and say nothing."""
    found = []
    if isinstance(instance, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if schema.get("x-kubernetes-preserve-unknown-fields") or properties is None:
            if isinstance(extra, dict):
                for key, value in instance.items():
                    found += unknown_fields(value, extra, f"{path}.{key}")
            return found
        for key, value in instance.items():
            if key in properties:
                found += unknown_fields(value, properties[key], f"{path}.{key}")
            else:
                found.append(f"{path}.{key}")
    elif isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            found += unknown_fields(item, schema["items"], f"{path}[{index}]")
    return found


def service_environment_names():
    """Every environment variable name the Swift services read: the keys they ask their
    swift-configuration reader for (`config.text("kafka.topic")`), as its environment provider
    maps them (`KAFKA_TOPIC`)."""
    names = set()
    reads = re.compile(r'\bconfig\.(?:text|required|port|integer|milliseconds|hostPort|hostPorts|choice)\(\s*"([a-z0-9.]+)"')
    # Read before the reader exists: SECRETS_DIR, which adds the directory of secret files.
    direct = re.compile(r'\bvariables\["([A-Z0-9_]+)"\]')
    for source in (ROOT / "Sources").rglob("*.swift"):
        text = source.read_text()
        names.update(key.upper().replace(".", "_") for key in reads.findall(text))
        names.update(direct.findall(text))
    assert {"KAFKA_BROKERS", "MONGODB_URI", "PORT", "HTTP_IDLE_TIMEOUT_MS"} <= names, names
    return names


class LintTests(unittest.TestCase):
    def test_both_charts_pass_helm_lint_strict(self):
        for chart, path in CHARTS.items():
            with self.subTest(chart=chart):
                report = helm.lint(path, strict=True, namespace=NAMESPACE)
                self.assertEqual(report["errors"], [], report)
                problems = [m for m in report["messages"] if m["severity"] >= 2]
                self.assertEqual(problems, [], report)


class SchemaValidationTests(unittest.TestCase):
    def test_every_rendered_object_is_valid_kubernetes(self):
        for chart in CHARTS:
            for label, values in configurations(chart):
                for obj in render(chart, values):
                    if obj["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/") + CRD_GROUPS):
                        continue
                    for version in KUBERNETES_VERSIONS:
                        with self.subTest(chart=chart, values=label, kind=obj["kind"], k8s=version):
                            kubernetes_validate.validate(obj, version, strict=True)

    def test_keda_objects_match_the_keda_crds(self):
        seen = set()
        for chart in CHARTS:
            for label, values in configurations(chart):
                for obj in render(chart, values):
                    if not obj["apiVersion"].startswith("keda.sh/"):
                        continue
                    seen.add(obj["kind"])
                    schema = keda_schema(obj["kind"])
                    with self.subTest(chart=chart, values=label, kind=obj["kind"]):
                        self.assertEqual(obj["apiVersion"], "keda.sh/v1alpha1")
                        jsonschema.Draft7Validator(schema).validate(obj)
                        self.assertEqual(unknown_fields(obj, schema), [])
        self.assertEqual(seen, {"ScaledObject", "TriggerAuthentication"})

    def test_the_structural_check_catches_a_misspelt_field(self):
        scaled = of_kind(render("cm-api"), "ScaledObject")[0]
        scaled["spec"]["fallbacks"] = scaled["spec"].pop("fallback")
        self.assertEqual(unknown_fields(scaled, keda_schema("ScaledObject")), [".spec.fallbacks"])

    def test_bad_values_are_refused_at_install_time_with_the_key(self):
        bad = {
            "cm-server": [
                ({"kafka": {"brokers": "kafka"}}, "/kafka/brokers"),
                ({"replicaCount": "2"}, "/replicaCount"),
                ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
                ({"resources": {"requests": {"memory": None}}}, "memory"),
                ({"resources": {"limits": None}}, "limits"),
                ({"autoscaling": {"type": "memory"}}, "/autoscaling/type"),
                ({"ingress": {"pathPrefix": "no-slash"}}, "/ingress/pathPrefix"),
                ({"kafka": {"sasl": {"mechanism": "GSSAPI"}}}, "/kafka/sasl/mechanism"),
                # Kubernetes 1.30 rejects a preStop sleep of 0 seconds.
                ({"preStopSleepSeconds": 0}, "/preStopSleepSeconds"),
                ({"replicas": 3}, "replicas"),
                ({"tracing": {"endpoint": "otel-collector:4318"}}, "/tracing/endpoint"),
                ({"tracing": {"sampler": "sometimes"}}, "/tracing/sampler"),
                ({"tracing": {"ratio": 1.5}}, "/tracing/ratio"),
            ],
            "cm-api": [
                ({"kafka": {"topicPartitions": 0}}, "/kafka/topicPartitions"),
                ({"autoscaling": {"minReplicas": 0}}, "/autoscaling/minReplicas"),
                ({"credentials": {"mongodbUri": "postgres://x"}}, "/credentials/mongodbUri"),
                ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
                ({"ingest": {"batchSize": 0}}, "/ingest/batchSize"),
                ({"preStopSleepSeconds": 0}, "/preStopSleepSeconds"),
                ({"tracing": {"resourceAttributes": {"team": "a,b"}}}, "/tracing/resourceAttributes"),
            ],
        }
        for chart, cases in bad.items():
            for values, key in cases:
                with self.subTest(chart=chart, values=values):
                    with self.assertRaises(helm.HelmError) as caught:
                        render(chart, values)
                    self.assertIn(key, str(caught.exception))

    def test_inconsistent_values_are_refused_with_the_reason(self):
        cases = [
            ("cm-server", {"shutdownTimeoutSeconds": 12}, "must exceed kafka.deliveryTimeoutMs"),
            ("cm-server", {"credentials": {"existingSecret": ""}}, "kafka.sasl.enabled needs"),
            ("cm-server", {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
             "minReplicas must not exceed"),
            ("cm-server", {"ingress": {"enabled": True, "tls": {"enabled": True, "secretName": "tls"}}},
             "needs ingress.host"),
            # use-regex on a host-less Ingress switches regex matching on for all of them.
            ("cm-server", {"ingress": {"enabled": True}}, "needs ingress.host"),
            ("cm-server", {"autoscaling": {"enabled": True, "type": "keda"},
                           "metrics": {"podAnnotations": False, "serviceMonitor": {"enabled": False}}},
             "nothing would scrape it"),
            ("cm-api", {"credentials": {"existingSecret": ""}}, "MongoDB credentials"),
            ("cm-api", {"autoscaling": {"maxReplicas": 13}}, "exceeds kafka.topicPartitions (12)"),
            ("cm-api", {"kafka": {"topicPartitions": 6}}, "exceeds kafka.topicPartitions (6)"),
            ("cm-api", {"autoscaling": {"fallbackReplicas": 20, "maxReplicas": 12}},
             "fallbackReplicas must not exceed"),
        ]
        for chart, values, reason in cases:
            with self.subTest(chart=chart, values=values):
                with self.assertRaises(helm.HelmError) as caught:
                    render(chart, values)
                self.assertIn(reason, str(caught.exception))


class HardeningTests(unittest.TestCase):
    def test_every_container_has_resources_and_the_security_context(self):
        for chart in CHARTS:
            for label, values in configurations(chart):
                for name, spec in pod_specs(render(chart, values)):
                    with self.subTest(chart=chart, values=label, pod=name):
                        pod_context = spec.get("securityContext", {})
                        self.assertIs(pod_context.get("runAsNonRoot"), True)
                        self.assertEqual(pod_context.get("seccompProfile", {}).get("type"), "RuntimeDefault")
                        self.assertIs(spec.get("automountServiceAccountToken"), False)
                        self.assertNotIn("hostNetwork", spec)
                        containers = spec["containers"] + spec.get("initContainers", [])
                        for container in containers:
                            context = container.get("securityContext", {})
                            self.assertIs(context.get("allowPrivilegeEscalation"), False, container["name"])
                            self.assertIs(context.get("readOnlyRootFilesystem"), True, container["name"])
                            self.assertIn("ALL", context.get("capabilities", {}).get("drop", []))
                            self.assertFalse(context.get("capabilities", {}).get("add"))
                            self.assertFalse(context.get("privileged", False))
                            resources = container.get("resources", {})
                            self.assertTrue({"cpu", "memory"} <= set(resources.get("requests", {})))
                            self.assertIn("memory", resources.get("limits", {}))

    def test_services_probe_healthz_for_liveness_and_readyz_for_readiness(self):
        for chart in CHARTS:
            for label, values in configurations(chart):
                for deployment in of_kind(render(chart, values), "Deployment"):
                    for container in deployment["spec"]["template"]["spec"]["containers"]:
                        with self.subTest(chart=chart, values=label, container=container["name"]):
                            port = container["ports"][0]["name"]
                            self.assertEqual(container["livenessProbe"]["httpGet"], {"path": "/healthz", "port": port})
                            self.assertEqual(container["readinessProbe"]["httpGet"], {"path": "/readyz", "port": port})
                            self.assertEqual(container["startupProbe"]["httpGet"]["path"], "/healthz")

    def test_readiness_probes_wait_longer_than_the_check_behind_them(self):
        """A probe that gives up before the service's own check can answer turns a slow broker or
        MongoDB into a pod taken out of the Service for no reason the service reported. The
        bounds are the services' named constants, read from their sources. (cm-server's readiness
        waits for nothing: it answers from its producer's state, LiveKafkaTests holds that.)"""
        bounds = {
            "cm-api": ("Sources/CMAPI/Store/MongoPurchaseStore.swift", "defaultWait"),
        }
        for chart, (source, name) in bounds.items():
            text = (ROOT / source).read_text()
            found = re.search(r"static let %s: Duration = \.seconds\((\d+)\)" % name, text)
            self.assertIsNotNone(found, f"{source} declares {name} in whole seconds")
            check = int(found.group(1))
            for label, values in configurations(chart):
                for deployment in of_kind(render(chart, values), "Deployment"):
                    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
                    with self.subTest(chart=chart, values=label):
                        self.assertGreater(probe.get("timeoutSeconds", 1), check,
                                           f"{chart}'s readiness probe must outwait its {check} s check")

    def test_grace_period_outlasts_the_services_shutdown_bound(self):
        for chart in CHARTS:
            for label, values in [*configurations(chart), ("slow", {"shutdownTimeoutSeconds": 120})]:
                deployment = of_kind(render(chart, values), "Deployment")[0]
                spec = deployment["spec"]["template"]["spec"]
                container = spec["containers"][0]
                shutdown = int(env_of(container)["SHUTDOWN_TIMEOUT_MS"]["value"]) / 1000
                pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
                with self.subTest(chart=chart, values=label):
                    self.assertGreater(spec["terminationGracePeriodSeconds"], pre_stop + shutdown)

    def test_cm_server_shutdown_bound_outlasts_its_delivery_timeout(self):
        container = of_kind(render("cm-server"), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
        env = env_of(container)
        self.assertGreater(int(env["SHUTDOWN_TIMEOUT_MS"]["value"]),
                           int(env["KAFKA_DELIVERY_TIMEOUT_MS"]["value"]) + 5000)

    def test_disruption_budget_and_spread_over_nodes_and_zones(self):
        for chart in CHARTS:
            objects = render(chart)
            deployment = of_kind(objects, "Deployment")[0]
            selector = deployment["spec"]["selector"]["matchLabels"]
            pdb = of_kind(objects, "PodDisruptionBudget")[0]
            with self.subTest(chart=chart):
                self.assertEqual(pdb["spec"]["selector"]["matchLabels"], selector)
                self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
                spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
                self.assertEqual({c["topologyKey"] for c in spread},
                                 {"topology.kubernetes.io/zone", "kubernetes.io/hostname"})
                self.assertTrue(all(c["labelSelector"]["matchLabels"] == selector for c in spread))

    def test_test_pods_are_not_selected_by_the_deployment_or_the_service(self):
        for chart in CHARTS:
            objects = render(chart)
            selector = of_kind(objects, "Deployment")[0]["spec"]["selector"]["matchLabels"]
            service_selector = of_kind(objects, "Service")[0]["spec"]["selector"]
            for pod in of_kind(objects, "Pod"):
                labels = pod["metadata"]["labels"]
                with self.subTest(chart=chart, pod=pod["metadata"]["name"]):
                    self.assertEqual(pod["metadata"]["annotations"]["helm.sh/hook"], "test")
                    self.assertFalse(selector.items() <= labels.items())
                    self.assertFalse(service_selector.items() <= labels.items())


class CredentialTests(unittest.TestCase):
    SECRET_VARIABLES = {"KAFKA_USERNAME", "KAFKA_PASSWORD", "MONGODB_URI"}

    # The files the services read credentials from (docs/CONTRACT.md): swift-configuration's
    # directory provider names a key's file by its dotted key with dashes (kafka.password ->
    # kafka-password), the environment provider its variable (KAFKA_PASSWORD).
    CREDENTIAL_FILES = {"kafka-username", "kafka-password", "mongodb-uri"}

    def test_credentials_are_files_never_environment_variables(self):
        known = service_environment_names()
        for chart in CHARTS:
            for label, values in configurations(chart):
                objects = render(chart, values)
                secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
                spec = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
                container = spec["containers"][0]
                env = env_of(container)
                with self.subTest(chart=chart, values=label):
                    self.assertFalse([name for name, entry in env.items()
                                      if set(entry.get("valueFrom", {})) - {"fieldRef"}],
                                     "no environment variable may come from a Secret (the pod's own fields may)")
                    self.assertFalse(self.SECRET_VARIABLES & set(env))
                    sasl = values.get("kafka", {}).get("sasl", {}).get("enabled", True)
                    expected = ({"kafka-username", "kafka-password"} if sasl else set()) | (
                        {"mongodb-uri"} if chart == "cm-api" else set())
                    if not expected:
                        continue
                    self.assertEqual(env["SECRETS_DIR"]["value"], "/etc/scalable-shop/secrets")
                    mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
                    self.assertEqual((mount["mountPath"], mount["readOnly"]), ("/etc/scalable-shop/secrets", True))
                    sources = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
                    credentials = sources[0]["secret"]
                    files = {item["path"]: item["key"] for item in credentials["items"]}
                    self.assertEqual(set(files), expected)
                    for file in files:
                        # The service reads that file: its variable is one it knows.
                        self.assertIn(file.upper().replace("-", "_"), known, file)
                    if values.get("credentials", {}).get("existingSecret") == "":
                        self.assertIn(credentials["name"], secrets, "the chart must create the Secret it names")
                        self.assertTrue(set(files.values()) <= set(secrets[credentials["name"]]["stringData"]))
                    else:
                        self.assertNotIn(credentials["name"], secrets, "an existing Secret is not overwritten")
                for obj in objects:
                    if obj["kind"] == "Secret":
                        continue
                    text = yaml.safe_dump(obj)
                    with self.subTest(chart=chart, values=label, kind=obj["kind"]):
                        self.assertNotIn("s3cret", text)
                        self.assertNotIn("cm-api:pw@", text)

    def test_the_contract_lists_every_credential_file(self):
        contract = (ROOT / "docs" / "CONTRACT.md").read_text()
        for file in self.CREDENTIAL_FILES | {"auth-jwt-secret", "auth-jwt-secret-next", "cm-api-service-token",
                                             "cm-api-service-token-next"}:
            with self.subTest(file=file):
                self.assertTrue(f"`{file}`" in contract, f"docs/CONTRACT.md does not name `{file}`")

    def test_a_chart_made_secret_change_rolls_the_pods(self):
        def checksum(password):
            values = deep_merge(ALL_FEATURES["cm-api"], {"credentials": {"kafkaPassword": password}})
            deployment = of_kind(render("cm-api", values), "Deployment")[0]
            return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/credentials"]
        self.assertNotEqual(checksum("one"), checksum("two"))

    def test_keda_authenticates_with_the_secret_cm_api_uses(self):
        for label, values in configurations("cm-api"):
            objects = render("cm-api", values)
            auth = of_kind(objects, "TriggerAuthentication")
            scaled = of_kind(objects, "ScaledObject")
            if not scaled:
                continue
            spec = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]
            env = env_of(spec["containers"][0])
            trigger = scaled[0]["spec"]["triggers"][0]
            # The files cm-api reads its Kafka credentials from: (Secret, key) per file.
            sources = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
            files = {item["path"]: (source["secret"]["name"], item["key"]) for source in sources
                     for item in source["secret"].get("items", [])}
            with self.subTest(values=label):
                if "kafka-username" not in files:
                    self.assertNotIn("sasl", trigger["metadata"])
                    continue
                self.assertEqual(trigger["authenticationRef"]["name"], auth[0]["metadata"]["name"])
                refs = {r["parameter"]: r for r in auth[0]["spec"]["secretTargetRef"]}
                for parameter, file in [("username", "kafka-username"), ("password", "kafka-password")]:
                    self.assertEqual((refs[parameter]["name"], refs[parameter]["key"]), files[file])
                mechanism = env["KAFKA_SASL_MECHANISM"]["value"]
                self.assertEqual(trigger["metadata"]["sasl"],
                                 {"SCRAM-SHA-512": "scram_sha512", "SCRAM-SHA-256": "scram_sha256",
                                  "PLAIN": "plaintext"}[mechanism])


class AutoscalingTests(unittest.TestCase):
    def test_cm_api_scales_on_its_own_consumer_group_lag(self):
        objects = render("cm-api")
        scaled = of_kind(objects, "ScaledObject")[0]
        deployment = of_kind(objects, "Deployment")[0]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env = env_of(container)
        trigger = scaled["spec"]["triggers"][0]
        self.assertEqual(trigger["type"], "kafka")
        self.assertEqual(scaled["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"])
        self.assertEqual(scaled["spec"]["scaleTargetRef"]["envSourceContainerName"], container["name"])
        for key, variable in [("bootstrapServersFromEnv", "KAFKA_BROKERS"),
                              ("consumerGroupFromEnv", "KAFKA_GROUPID"), ("topicFromEnv", "KAFKA_TOPIC")]:
            self.assertEqual(trigger["metadata"][key], variable)
            self.assertIn("value", env[variable])
        # The consumer's auto.offset.reset is earliest: a new group's backlog is all lag.
        self.assertEqual(trigger["metadata"]["offsetResetPolicy"], "earliest")
        self.assertEqual(trigger["metadata"]["allowIdleConsumers"], "false")
        self.assertGreaterEqual(scaled["spec"]["minReplicaCount"], 1, "cm-api serves reads: never zero")
        self.assertIn("fallback", scaled["spec"])
        self.assertNotIn("replicas", deployment["spec"], "KEDA owns the replica count")

    def test_a_fallback_never_scales_down_below_what_runs(self):
        for chart, values in [("cm-api", {}), ("cm-server", {"autoscaling": {"enabled": True}})]:
            fallback = of_kind(render(chart, values), "ScaledObject")[0]["spec"]["fallback"]
            with self.subTest(chart=chart):
                self.assertEqual(fallback["behavior"], "currentReplicasIfHigher")

    def test_scale_up_is_fast_and_scale_down_slow(self):
        for chart, values in [("cm-api", {}), ("cm-server", {"autoscaling": {"enabled": True}}),
                              ("cm-server", {"autoscaling": {"enabled": True, "type": "cpu"}})]:
            objects = render(chart, values)
            hpa = of_kind(objects, "HorizontalPodAutoscaler")
            scaled = of_kind(objects, "ScaledObject")
            behavior = (hpa[0]["spec"] if hpa else
                        scaled[0]["spec"]["advanced"]["horizontalPodAutoscalerConfig"])["behavior"]
            with self.subTest(chart=chart, values=values):
                self.assertEqual(behavior["scaleUp"]["stabilizationWindowSeconds"], 0)
                self.assertGreaterEqual(behavior["scaleDown"]["stabilizationWindowSeconds"], 300)

    def test_max_replicas_never_exceed_the_partitions_of_the_topic_as_created(self):
        topics = {t["spec"]["topicName"]: t["spec"]["partitions"]
                  for t in yaml.safe_load_all((ROOT / "k8s" / "kafka" / "cluster.yaml").read_text())
                  if t["kind"] == "KafkaTopic"}
        deploy_values = yaml.safe_load((ROOT / "k8s" / "scalable-shop" / "cm-api.yaml").read_text())
        for label, values in [("chart defaults", {}), ("k8s/scalable-shop/cm-api.yaml", deploy_values)]:
            objects = render("cm-api", values)
            scaled = of_kind(objects, "ScaledObject")[0]
            topic = env_of(of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
            with self.subTest(values=label):
                self.assertLessEqual(scaled["spec"]["maxReplicaCount"], topics[topic["KAFKA_TOPIC"]["value"]])
        self.assertEqual(helm.Chart.load(CHARTS["cm-api"]).values["kafka"]["topicPartitions"],
                         topics["scalable-shop-purchases"])

    def test_cm_server_scales_on_request_rate_from_prometheus(self):
        objects = render("cm-server", {"autoscaling": {"enabled": True}})
        trigger = of_kind(objects, "ScaledObject")[0]["spec"]["triggers"][0]
        self.assertEqual(trigger["type"], "prometheus")
        self.assertIn("rate(http_requests_total{", trigger["metadata"]["query"])
        # Only labels both scrape modes give (a "service" label exists with a ServiceMonitor only;
        # test_live_queries.py runs the query against a real Prometheus), and no data is an error.
        self.assertNotIn("service=", trigger["metadata"]["query"])
        self.assertEqual(trigger["metadata"]["ignoreNullValues"], "false")
        self.assertEqual(of_kind(objects, "HorizontalPodAutoscaler"), [])
        self.assertNotIn("replicas", of_kind(objects, "Deployment")[0]["spec"])
        cpu = render("cm-server", {"autoscaling": {"enabled": True, "type": "cpu"}})
        self.assertEqual(of_kind(cpu, "ScaledObject"), [])
        metric = of_kind(cpu, "HorizontalPodAutoscaler")[0]["spec"]["metrics"][0]
        self.assertEqual(metric["resource"]["name"], "cpu")


class NetworkTests(unittest.TestCase):
    def test_only_cm_server_reaches_cm_api(self):
        policy = of_kind(render("cm-api"), "NetworkPolicy")[0]
        peers = policy["spec"]["ingress"][0]["from"]
        self.assertEqual(policy["spec"]["policyTypes"], ["Ingress"])
        self.assertIn({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "cm-server"}}}, peers)
        # cm-server's pods carry that label; nothing else in the charts does.
        server = of_kind(render("cm-server"), "Deployment")[0]
        self.assertEqual(server["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"], "cm-server")
        for peer in peers:
            self.assertTrue("podSelector" in peer, peer)
            self.assertNotEqual(peer.get("podSelector"), {}, "an empty selector would admit every pod")

    def test_only_the_front_door_reaches_cm_server_from_outside(self):
        policy = of_kind(render("cm-server"), "NetworkPolicy")[0]
        peers = policy["spec"]["ingress"][0]["from"]
        controller = peers[0]
        # The data plane NGINX Gateway Fabric provisions for the runbook's Gateway: its pods carry
        # Gateway API's gateway-name label (provisioner/objects.go at v2.6.7).
        gateway = runbook_gateway()
        self.assertEqual(controller["namespaceSelector"]["matchLabels"],
                         {"kubernetes.io/metadata.name": gateway["metadata"]["namespace"]})
        self.assertEqual(controller["podSelector"]["matchLabels"],
                         {"gateway.networking.k8s.io/gateway-name": gateway["metadata"]["name"]})
        for peer in peers:
            self.assertNotIn("ipBlock", peer)
            self.assertNotEqual(peer.get("podSelector"), {})

    def test_ingress_keeps_the_original_public_paths(self):
        objects = render("cm-server", ALL_FEATURES["cm-server"])
        ingresses = {i["metadata"]["name"]: i for i in of_kind(objects, "Ingress")}
        main = ingresses["cm-server"]
        annotations = main["metadata"]["annotations"]
        self.assertEqual(main["spec"]["ingressClassName"], "nginx")
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/use-regex"], "true")
        path = main["spec"]["rules"][0]["http"]["paths"][0]["path"]
        target = annotations["nginx.ingress.kubernetes.io/rewrite-target"]
        # ingress-nginx matches the path as a case-insensitive regex anchored at the start and
        # rewrites with its groups: what cm-server sees for the original README's URLs.
        pattern = re.compile("^" + path, re.IGNORECASE)
        seen = {}
        for public in PUBLIC_PATHS:
            match = pattern.match(public)
            self.assertIsNotNone(match, public)
            seen[public] = match.expand(target.replace("$", "\\"))
        self.assertEqual(seen, PUBLIC_PATHS)
        self.assertIsNone(pattern.match("/other/buy"))
        # Health, readiness, metrics and the OpenAPI document stay inside the cluster (issue 19:
        # /readyz's reasons are internal detail, /metrics names every route and error).
        for private in ["healthz", "readyz", "metrics", "openapi.yaml", "buyx", "getAllUserBuys/",
                        "buy/../metrics", "BUY/../readyz", "shop.jsx"]:
            self.assertIsNone(pattern.match("/scalable-shop-cm-server/" + private), private)
        # ingress-nginx's own per-address limits in front of cm-server's per-principal ones.
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/limit-connections"], "20")
        self.assertEqual(annotations["nginx.ingress.kubernetes.io/limit-rps"], "50")
        # The bare prefix goes to the page's URL with its trailing slash (relative URLs need it).
        slash = ingresses["cm-server-slash"]
        self.assertEqual(slash["metadata"]["annotations"]["nginx.ingress.kubernetes.io/permanent-redirect"],
                         "https://shop.example.com/scalable-shop-cm-server/")
        bare = slash["spec"]["rules"][0]["http"]["paths"][0]["path"]
        self.assertRegex("/scalable-shop-cm-server", "^" + bare)
        self.assertNotRegex("/scalable-shop-cm-server/buy", "^" + bare)
        self.assertIsNone(pattern.match("/scalable-shop-cm-server"))
        self.assertEqual(main["spec"]["tls"], [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}])

    def test_routes_policies_and_the_gateway_match_their_crds(self):
        seen = set()
        documents = [(f"{chart} {label}", obj) for chart in CHARTS for label, values in configurations(chart)
                     for obj in render(chart, values)]
        documents += [("k8s/nginx-gateway/gateway.yaml", obj) for obj in
                      yaml.safe_load_all((ROOT / "k8s" / "nginx-gateway" / "gateway.yaml").read_text())]
        runbook = yaml.safe_load((ROOT / "k8s" / "scalable-shop" / "cm-server.yaml").read_text())
        documents += [("runbook values", obj) for obj in render("cm-server", runbook)]
        for label, obj in documents:
            if not obj["apiVersion"].startswith(CRD_GROUPS):
                continue
            seen.add(obj["kind"])
            with self.subTest(source=label, kind=obj["kind"]):
                schema = crd_schema(obj["kind"], obj["apiVersion"].split("/")[1])
                jsonschema.Draft7Validator(schema).validate(obj)
                self.assertEqual(unknown_fields(obj, schema), [])
        self.assertEqual(seen, set(CRD_FILES))

    def test_the_structural_check_catches_a_misspelt_route_field(self):
        route = of_kind(render("cm-server", {"httpRoute": {"enabled": True}}), "HTTPRoute")[0]
        route["spec"]["rules"][0]["timeout"] = {"request": "15s"}
        self.assertEqual(unknown_fields(route, crd_schema("HTTPRoute", "v1")), [".spec.rules[0].timeout"])

    @staticmethod
    def through_route(route, path):
        """What a Gateway does with a request for `path` (Gateway API v1): the rule whose match
        wins (an Exact match over any PathPrefix, then the longest prefix; a prefix matches whole
        path elements), then its filters. Returns ("proxy", the path cm-server sees, the rule),
        ("redirect", the new path, status) or None (the Gateway's 404)."""
        candidates = []
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                kind, value = match["path"]["type"], match["path"]["value"]
                if kind == "Exact" and path == value:
                    candidates.append(((1, len(value)), rule, value))
                elif kind == "PathPrefix":
                    base = value.rstrip("/")
                    if path == base or path.startswith(base + "/"):
                        candidates.append(((0, len(base)), rule, base))
        if not candidates:
            return None
        _, rule, matched = max(candidates, key=lambda c: c[0])
        seen = path
        for item in rule.get("filters", []):
            if item["type"] == "RequestRedirect":
                redirect = item["requestRedirect"]
                return ("redirect", redirect["path"]["replaceFullPath"], redirect["statusCode"])
            if item["type"] == "URLRewrite":
                modifier = item["urlRewrite"]["path"]
                if modifier["type"] == "ReplaceFullPath":
                    seen = modifier["replaceFullPath"]
                else:
                    rest = path[len(matched):].lstrip("/")
                    seen = modifier["replacePrefixMatch"].rstrip("/") + "/" + rest
        return ("proxy", seen, rule)

    def test_httproute_keeps_the_original_public_paths_and_nothing_else(self):
        objects = render("cm-server", ALL_FEATURES["cm-server"])
        [route] = of_kind(objects, "HTTPRoute")
        service = of_kind(objects, "Service")[0]
        gateway = runbook_gateway()
        [parent] = route["spec"]["parentRefs"]
        self.assertEqual((parent["name"], parent["namespace"]),
                         (gateway["metadata"]["name"], gateway["metadata"]["namespace"]))
        listener = next(l for l in gateway["spec"]["listeners"] if l["name"] == parent["sectionName"])
        self.assertEqual((listener["protocol"], listener["tls"]["mode"]), ("HTTPS", "Terminate"))
        self.assertEqual(route["spec"]["hostnames"], ["shop.example.com"])
        seen = {}
        for public in PUBLIC_PATHS:
            result = self.through_route(route, public)
            self.assertEqual(result[0], "proxy", public)
            rule = result[2]
            seen[public] = result[1]
            self.assertEqual(rule["backendRefs"], [{"name": service["metadata"]["name"],
                                                    "port": service["spec"]["ports"][0]["port"]}])
            # cm-server answers within kafka.deliveryTimeoutMs (10 s) or cmApi.timeoutMs (5 s).
            self.assertEqual(rule["timeouts"], {"request": "15s"})
            headers = [f["requestHeaderModifier"]["set"] for f in rule["filters"] if f["type"] == "RequestHeaderModifier"]
            self.assertEqual(headers, [[{"name": "X-Forwarded-Prefix", "value": "/scalable-shop-cm-server"}]])
        self.assertEqual(seen, PUBLIC_PATHS)
        # Health, readiness, metrics and the OpenAPI document stay inside the cluster.
        for private in ["healthz", "readyz", "metrics", "openapi.yaml", "buyx", "buy/x", "shop.jsx", "x/buy"]:
            self.assertIsNone(self.through_route(route, "/scalable-shop-cm-server/" + private), private)
        self.assertIsNone(self.through_route(route, "/metrics"))
        self.assertIsNone(self.through_route(route, "/buy"))
        # The bare prefix goes to the page's URL with its trailing slash (relative URLs need it).
        self.assertEqual(self.through_route(route, "/scalable-shop-cm-server"),
                         ("redirect", "/scalable-shop-cm-server/", 301))

    def test_nginx_gateway_fabric_gets_its_timeouts_and_body_size_from_its_policies(self):
        objects = render("cm-server", charts.NGINX_GATEWAY_FABRIC)
        [route] = of_kind(objects, "HTTPRoute")
        for rule in route["spec"]["rules"]:
            self.assertNotIn("timeouts", rule, "NGINX Gateway Fabric refuses a rule with timeouts")
        [proxy] = of_kind(objects, "ProxySettingsPolicy")
        [client] = of_kind(objects, "ClientSettingsPolicy")
        target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": route["metadata"]["name"]}
        self.assertEqual(proxy["spec"], {"targetRefs": [target], "timeout": {"read": "15s"}})
        self.assertEqual(client["spec"], {"targetRef": target, "body": {"maxSize": "64k"}})
        with self.assertRaisesRegex(Exception, "NGINX Gateway Fabric refuses"):
            render("cm-server", deep_merge(charts.NGINX_GATEWAY_FABRIC, {"httpRoute": {"timeouts": True}}))
        runbook = yaml.safe_load((ROOT / "k8s" / "scalable-shop" / "cm-server.yaml").read_text())
        self.assertEqual(of_kind(render("cm-server", runbook), "ProxySettingsPolicy")[0]["spec"], proxy["spec"])
        self.assertFalse(of_kind(render("cm-server", runbook), "Ingress"), "the runbook's front door is the Gateway")

    def test_a_public_route_without_auth_must_be_chosen(self):
        public = {"httpRoute": {"enabled": True}, "auth": {"mode": "none"}}
        with self.assertRaisesRegex(Exception, "httpRoute.allowUnauthenticated"):
            render("cm-server", public)
        chosen = deep_merge(public, {"httpRoute": {"allowUnauthenticated": True}})
        self.assertEqual(len(of_kind(render("cm-server", chosen), "HTTPRoute")), 1)

    def test_metrics_are_scraped_by_annotation_or_service_monitor(self):
        for chart in CHARTS:
            objects = render(chart)
            annotations = of_kind(objects, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
            container = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
            with self.subTest(chart=chart):
                self.assertEqual(annotations["prometheus.io/path"], "/metrics")
                self.assertEqual(annotations["prometheus.io/port"], str(container["ports"][0]["containerPort"]))
                self.assertEqual(of_kind(objects, "ServiceMonitor"), [])
                monitor = of_kind(render(chart, ALL_FEATURES[chart]), "ServiceMonitor")[0]
                self.assertEqual(monitor["spec"]["endpoints"][0]["path"], "/metrics")


class AuthTests(unittest.TestCase):
    """docs/SECURITY.md: auth on by default, secrets as files, never a public ingress without auth
    unless chosen."""

    def test_both_charts_verify_with_public_keys_by_default_and_mount_secrets_as_files(self):
        for chart in CHARTS:
            with self.subTest(chart=chart):
                spec = of_kind(render(chart), "Deployment")[0]["spec"]["template"]["spec"]
                container = spec["containers"][0]
                env = env_of(container)
                self.assertEqual(env["AUTH_MODE"]["value"], "jwt")
                self.assertEqual(env["SECRETS_DIR"]["value"], "/etc/scalable-shop/secrets")
                self.assertIn("AUTH_ISSUER", env)
                self.assertIn("AUTH_AUDIENCE", env)
                # The default: an identity provider's public keys, read again when the ConfigMap
                # changes; no secret a serving pod could mint tokens with.
                self.assertEqual(env["AUTH_JWKS_FILE"]["value"], "/etc/scalable-shop/jwks/jwks.json")
                self.assertEqual(env["AUTH_JWKS_RELOAD_S"]["value"], "10")
                self.assertIn({"name": "auth-jwks", "configMap": {"name": "scalable-shop-jwks"}}, spec["volumes"])
                jwks_mount = next(m for m in container["volumeMounts"] if m["name"] == "auth-jwks")
                self.assertNotIn("subPath", jwks_mount, "a subPath mount is never updated in place")
                # Secrets are files, never environment variables.
                for name in ("AUTH_JWT_SECRET", "CM_API_SERVICE_TOKEN"):
                    self.assertNotIn(name, env)
                sources = next(v for v in spec["volumes"] if v["name"] == "secrets")["projected"]["sources"]
                self.assertIn({"secret": {"name": "scalable-shop-auth"}}, sources)
                hs256 = {"auth": {"jwksConfigMap": {"name": ""}}}
                spec = of_kind(render(chart, hs256), "Deployment")[0]["spec"]["template"]["spec"]
                self.assertNotIn("AUTH_JWKS_FILE", env_of(spec["containers"][0]))
                self.assertNotIn("auth-jwks", [v["name"] for v in spec["volumes"]])
                none = {"auth": {"mode": "none"}, "kafka": {"sasl": {"enabled": False}}}
                none = of_kind(render(chart, none), "Deployment")[0]["spec"]["template"]["spec"]
                self.assertEqual(env_of(none["containers"][0])["AUTH_MODE"]["value"], "none")
                if chart == "cm-server":
                    self.assertNotIn("volumes", none)
                with self.assertRaisesRegex(Exception, "auth.mode jwt needs auth.issuer"):
                    render(chart, {"auth": {"issuer": ""}})

    def test_a_public_ingress_without_auth_must_be_chosen(self):
        public = {"ingress": {"enabled": True, "host": "shop.example.com"}}
        with self.assertRaisesRegex(Exception, "ingress.allowUnauthenticated"):
            render("cm-server", deep_merge(public, {"auth": {"mode": "none"}}))
        chosen = deep_merge(public, {"auth": {"mode": "none"}, "ingress": {"allowUnauthenticated": True}})
        self.assertEqual(len(of_kind(render("cm-server", chosen), "Ingress")), 2)
        self.assertEqual(len(of_kind(render("cm-server", public), "Ingress")), 2)

    def test_rate_limits_reach_the_service(self):
        values = {"rateLimits": {"buy": {"perSecond": 5, "burst": 9}, "trustedProxies": ["10.0.0.0/8", "fd00::/8"]}}
        env = env_of(of_kind(render("cm-server", values), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
        self.assertEqual({name: env[name]["value"] for name in env if name.startswith(("RATE_", "TRUSTED_"))}, {
            "RATE_LIMIT_BUY_PER_SECOND": "5", "RATE_LIMIT_BUY_BURST": "9", "RATE_LIMIT_LIST_PER_SECOND": "50",
            "RATE_LIMIT_LIST_BURST": "100", "TRUSTED_PROXIES": "10.0.0.0/8,fd00::/8"})


class AgreementTests(unittest.TestCase):
    def test_every_variable_the_charts_set_is_read_by_the_service(self):
        known = service_environment_names()
        for chart in CHARTS:
            for label, values in configurations(chart):
                container = of_kind(render(chart, values), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
                env = env_of(container)
                # Set for the $(NAME) of another value (the pod's name in OTEL_RESOURCE_ATTRIBUTES).
                expanded = {name for e in env.values() for name in re.findall(r"\$\(([A-Z0-9_]+)\)", e.get("value", ""))}
                for name in env:
                    with self.subTest(chart=chart, values=label, variable=name):
                        self.assertIn(name, known | expanded)

    def test_tracing_is_off_by_default_and_on_with_an_endpoint(self):
        collector = yaml.safe_load((ROOT / "k8s" / "otel-collector" / "values.yaml").read_text())
        endpoint = f'http://{collector["fullnameOverride"]}.observability.svc:{collector_http_port()}'
        for chart in CHARTS:
            def env(values):
                deployment = of_kind(render(chart, values), "Deployment")[0]
                return [e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]]

            self.assertEqual([e["name"] for e in env({}) if e["name"].startswith(("OTEL_", "K8S_"))], [])
            runbook = yaml.safe_load((ROOT / "k8s" / "scalable-shop" / f"{chart}.yaml").read_text())
            self.assertEqual(runbook["tracing"]["endpoint"], endpoint, "the runbook sends to its Collector")
            names = [e["name"] for e in env(runbook)]
            values = {e["name"]: e.get("value") for e in env(runbook)}
            self.assertEqual(values["OTEL_EXPORTER_OTLP_ENDPOINT"], endpoint)
            self.assertEqual(values["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf")
            self.assertEqual(values["OTEL_SERVICE_NAME"], chart)
            self.assertEqual((values["OTEL_TRACES_SAMPLER"], values["OTEL_TRACES_SAMPLER_ARG"]),
                             ("parentbased_traceidratio", "0.1"), "parent-based ratio by default")
            attributes = dict(pair.split("=", 1) for pair in values["OTEL_RESOURCE_ATTRIBUTES"].split(","))
            self.assertEqual(attributes["k8s.pod.name"], "$(K8S_POD_NAME)")
            self.assertEqual(attributes["k8s.namespace.name"], "$(K8S_NAMESPACE_NAME)")
            self.assertEqual(attributes["service.version"], chart_app_version(chart))
            # Kubernetes expands $(NAME) only from variables defined before the one using it.
            for name in ("K8S_POD_NAME", "K8S_NAMESPACE_NAME", "K8S_NODE_NAME"):
                self.assertLess(names.index(name), names.index("OTEL_RESOURCE_ATTRIBUTES"))
            always = {e["name"]: e.get("value") for e in env(runbook | {"tracing": runbook["tracing"] | {
                "sampler": "always_on", "resourceAttributes": {"deployment.environment.name": "prod"}}})}
            self.assertNotIn("OTEL_TRACES_SAMPLER_ARG", always)
            self.assertTrue(always["OTEL_RESOURCE_ATTRIBUTES"].endswith(",deployment.environment.name=prod"))

    def test_cm_server_finds_cm_api_where_the_cm_api_chart_puts_it(self):
        api_service = of_kind(render("cm-api"), "Service")[0]
        host = f'{api_service["metadata"]["name"]}:{api_service["spec"]["ports"][0]["port"]}'
        for values in [{}, yaml.safe_load((ROOT / "k8s" / "scalable-shop" / "cm-server.yaml").read_text())]:
            container = of_kind(render("cm-server", values | {"ingress": {"enabled": False}}), "Deployment")[0][
                "spec"]["template"]["spec"]["containers"][0]
            self.assertEqual(env_of(container)["CM_API_HOST"]["value"], host)

    def test_charts_use_the_topic_group_and_users_the_cluster_creates(self):
        cluster = list(yaml.safe_load_all((ROOT / "k8s" / "kafka" / "cluster.yaml").read_text()))
        topics = {o["spec"]["topicName"] for o in cluster if o["kind"] == "KafkaTopic"}
        kafka = next(o for o in cluster if o["kind"] == "Kafka")
        bootstrap = f'{kafka["metadata"]["name"]}-kafka-bootstrap.kafka.svc:{kafka["spec"]["kafka"]["listeners"][0]["port"]}'
        for chart in CHARTS:
            env = env_of(of_kind(render(chart), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
            with self.subTest(chart=chart):
                self.assertEqual(env["KAFKA_BROKERS"]["value"], bootstrap)
                self.assertIn(env["KAFKA_TOPIC"]["value"], topics)
                self.assertIn(f'{env["KAFKA_TOPIC"]["value"]}.dlq', topics)
                self.assertEqual(kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"],
                                 env["KAFKA_SASL_MECHANISM"]["value"].lower())

    def test_each_kafka_identity_holds_exactly_what_its_binary_does(self):
        """Each KafkaUser's ACLs are what its binary says it does (`kafka-acls`, built from the
        names its Kafka clients are given), for the topic and group the charts configure: no
        missing right (the documented command would fail with an authorization error) and no
        extra one."""
        cluster = list(yaml.safe_load_all((ROOT / "k8s" / "kafka" / "cluster.yaml").read_text()))
        users = {o["metadata"]["name"]: o["spec"]["authorization"]["acls"] for o in cluster if o["kind"] == "KafkaUser"}
        bin_dir = Path(os.environ.get("BIN_DIR") or ROOT / ".build" / "debug")

        def normal(acls):
            return sorted((a["resource"]["type"], a["resource"].get("name"), a["resource"].get("patternType"),
                           tuple(sorted(a["operations"]))) for a in acls)

        identities = {"cm-server": ("cm-server", []), "cm-api": ("cm-api", []),
                      "scalable-shop-dlq-operator": ("cm-api", ["--dead-letter-tool"])}
        self.assertEqual(set(users), set(identities))
        for user, (binary, flags) in identities.items():
            chart = binary
            env = env_of(of_kind(render(chart), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
            names = {name: env[name]["value"] for name in ("KAFKA_TOPIC", "KAFKA_GROUPID") if name in env}
            printed = subprocess.run([str(bin_dir / binary), "kafka-acls", *flags], env={"PATH": "/usr/bin", **names},
                                     capture_output=True, text=True, timeout=60, check=True).stdout
            with self.subTest(user=user):
                self.assertEqual(normal(users[user]), normal(json.loads(printed)))

    def test_the_dead_letter_tool_runs_as_its_own_identity_with_files(self):
        """The runbook's `kubectl run` overrides for `cm-api dlq`: a valid, hardened pod whose
        Kafka credentials are the operator's KafkaUser's, as files, and whose variables the
        binary reads."""
        pod = json.loads((ROOT / "k8s" / "scalable-shop" / "dlq-operator.json").read_text())
        pod = deep_merge(pod, {"kind": "Pod", "metadata": {"name": "dlq-operator"}})
        pod["spec"]["containers"][0].update({"image": "cm-api", "args": ["dlq", "list"]})
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)
        [container] = pod["spec"]["containers"]
        self.assertEqual(container["name"], "dlq-operator", "kubectl run merges the container of the pod's name")
        env = env_of(container)
        known = service_environment_names()
        for name in env:
            self.assertIn(name, known)
        self.assertFalse({"KAFKA_USERNAME", "KAFKA_PASSWORD"} & set(env), "credentials are files")
        self.assertEqual(container["securityContext"]["capabilities"], {"drop": ["ALL"]})
        self.assertTrue(container["securityContext"]["readOnlyRootFilesystem"])
        [volume] = pod["spec"]["volumes"]
        self.assertEqual(volume["secret"]["secretName"], "dlq-operator-credentials")
        runbook = (ROOT / "k8s" / "README.md").read_text()
        self.assertIn("--from-literal=kafka-username=scalable-shop-dlq-operator", runbook)
        self.assertIn("kafka-password=\"$(secret kafka scalable-shop-dlq-operator password)\"", runbook)
        cm_api = env_of(of_kind(render("cm-api"), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
        for name in ("KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_SASL_MECHANISM"):
            self.assertEqual(env[name]["value"], cm_api[name]["value"], name)

    def test_dockerfile_agrees_with_the_charts(self):
        dockerfile = (ROOT / "Dockerfile").read_text()
        # Every base image is pinned by digest (a FROM names one of these arguments or a stage).
        bases = dict(re.findall(r"^ARG (\w+_IMAGE)=(\S+)$", dockerfile, re.MULTILINE))
        self.assertEqual(set(bases), {"SWIFT_IMAGE", "RUNTIME_IMAGE"})
        for name, image in bases.items():
            self.assertRegex(image, r"^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$", name)
        for source in re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE):
            self.assertIn(source, {"${SWIFT_IMAGE}", "${RUNTIME_IMAGE}", "runtime"}, source)
        user = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
        self.assertIsNotNone(user, "the image must run as a numeric non-root user")
        for chart in CHARTS:
            values = helm.Chart.load(CHARTS[chart]).values
            stage = re.search(rf"^FROM runtime AS {chart}\n(.*?)(?=^FROM |\Z)", dockerfile, re.MULTILINE | re.DOTALL)
            with self.subTest(chart=chart):
                self.assertIsNotNone(stage, f"no {chart} target")
                self.assertIn(f"EXPOSE {values['containerPort']}", stage.group(1))
                self.assertEqual(int(user.group(1)), values["podSecurityContext"]["runAsUser"])
                self.assertTrue(values["image"]["repository"].endswith(f"/{chart}"))

    def test_runbook_values_files_are_valid_for_their_charts(self):
        for chart in CHARTS:
            values = yaml.safe_load((ROOT / "k8s" / "scalable-shop" / f"{chart}.yaml").read_text())
            with self.subTest(chart=chart):
                helm.Chart.load(CHARTS[chart]).validate_schema(values)
                self.assertTrue(of_kind(render(chart, values), "Deployment"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
