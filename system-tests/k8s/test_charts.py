"""The Kubernetes artefacts, checked without a cluster (run by `make test`).

Real Helm (helm-python-sdk embeds Helm v4's Go SDK) lints and renders both charts with their
defaults and with every optional feature on; every rendered object is validated against the
Kubernetes schemas of the oldest supported (1.30) and the newest known version, KEDA objects
against KEDA's CRD schemas in schemas/keda/ beside this file. Then the promises the charts make are
checked on what they render: hardening, probes, resources, shutdown bounds, credentials only from
Secrets, autoscaling within the topic's partitions, and agreement with the services' own
configuration, the Dockerfile and the cluster pieces in k8s/.
"""

import re
import unittest
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import yaml

from shoptest.charts import CHARTS, NAMESPACE, deep_merge, of_kind, render

ROOT = Path(__file__).resolve().parents[2]
# KEDA's CRDs (see schemas/keda/README.md for where they come from).
KEDA_CRDS = Path(__file__).resolve().parent / "schemas" / "keda"
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]

# Every optional feature on, and the credentials made by the chart instead of an existing Secret.
ALL_FEATURES = {
    "cm-server": {
        "credentials": {"existingSecret": "", "kafkaUsername": "cm-server", "kafkaPassword": "s3cret"},
        "kafka": {"tls": {"enabled": True, "caSecret": {"name": "kafka-ca", "key": "ca.crt"}}},
        "ingress": {"enabled": True, "host": "shop.example.com",
                    "tls": {"enabled": True, "secretName": "shop-tls"}},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
                    "prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}},
        "autoscaling": {"enabled": True, "type": "keda"},
        "imagePullSecrets": [{"name": "registry"}],
    },
    "cm-api": {
        "credentials": {"existingSecret": "", "mongodbUri": "mongodb://cm-api:pw@mongo:27017/admin",
                        "kafkaUsername": "cm-api", "kafkaPassword": "s3cret"},
        "kafka": {"tls": {"enabled": True, "caSecret": {"name": "kafka-ca", "key": "ca.crt"}}},
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                    "dashboard": {"enabled": True}},
        "imagePullSecrets": [{"name": "registry"}],
    },
}
# The other branches: CPU autoscaling, no SASL, no autoscaling, ingress without TLS.
VARIANTS = {
    "cm-server": [
        {"autoscaling": {"enabled": True, "type": "cpu"}},
        {"kafka": {"sasl": {"enabled": False}}, "ingress": {"enabled": True, "host": "shop.example.com"}},
    ],
    "cm-api": [
        {"autoscaling": {"enabled": False}},
        {"kafka": {"sasl": {"enabled": False}}},
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
                    if obj["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
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
            ],
            "cm-api": [
                ({"kafka": {"topicPartitions": 0}}, "/kafka/topicPartitions"),
                ({"autoscaling": {"minReplicas": 0}}, "/autoscaling/minReplicas"),
                ({"credentials": {"mongodbUri": "postgres://x"}}, "/credentials/mongodbUri"),
                ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
                ({"ingest": {"batchSize": 0}}, "/ingest/batchSize"),
                ({"preStopSleepSeconds": 0}, "/preStopSleepSeconds"),
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

    def test_credentials_come_only_from_secrets(self):
        for chart in CHARTS:
            for label, values in configurations(chart):
                objects = render(chart, values)
                secrets = {s["metadata"]["name"]: s for s in of_kind(objects, "Secret")}
                container = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
                for name, entry in env_of(container).items():
                    if name not in self.SECRET_VARIABLES:
                        continue
                    with self.subTest(chart=chart, values=label, variable=name):
                        self.assertNotIn("value", entry)
                        ref = entry["valueFrom"]["secretKeyRef"]
                        expected = values.get("credentials", {}).get("existingSecret", None)
                        if expected == "":
                            self.assertIn(ref["name"], secrets, "the chart must create the Secret it names")
                            self.assertIn(ref["key"], secrets[ref["name"]]["stringData"])
                        else:
                            self.assertNotIn(ref["name"], secrets, "an existing Secret is not overwritten")
                for obj in objects:
                    if obj["kind"] == "Secret":
                        continue
                    text = yaml.safe_dump(obj)
                    with self.subTest(chart=chart, values=label, kind=obj["kind"]):
                        self.assertNotIn("s3cret", text)
                        self.assertNotIn("cm-api:pw@", text)

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
            container = of_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
            env = env_of(container)
            trigger = scaled[0]["spec"]["triggers"][0]
            with self.subTest(values=label):
                if "KAFKA_USERNAME" not in env:
                    self.assertNotIn("sasl", trigger["metadata"])
                    continue
                self.assertEqual(trigger["authenticationRef"]["name"], auth[0]["metadata"]["name"])
                refs = {r["parameter"]: r for r in auth[0]["spec"]["secretTargetRef"]}
                for parameter, variable in [("username", "KAFKA_USERNAME"), ("password", "KAFKA_PASSWORD")]:
                    secret_ref = env[variable]["valueFrom"]["secretKeyRef"]
                    self.assertEqual((refs[parameter]["name"], refs[parameter]["key"]),
                                     (secret_ref["name"], secret_ref["key"]))
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

    def test_only_the_ingress_controller_reaches_cm_server_from_outside(self):
        policy = of_kind(render("cm-server"), "NetworkPolicy")[0]
        peers = policy["spec"]["ingress"][0]["from"]
        controller = peers[0]
        self.assertEqual(controller["namespaceSelector"]["matchLabels"],
                         {"kubernetes.io/metadata.name": "ingress-nginx"})
        self.assertEqual(controller["podSelector"]["matchLabels"], {"app.kubernetes.io/name": "ingress-nginx"})
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
        for public in ["/scalable-shop-cm-server/buy", "/scalable-shop-cm-server/getAllUserBuys/joe",
                       "/scalable-shop-cm-server/getAllUserBuys/a/b", "/scalable-shop-cm-server/shop.js",
                       "/scalable-shop-cm-server/shop.css", "/scalable-shop-cm-server/"]:
            match = pattern.match(public)
            self.assertIsNotNone(match, public)
            seen[public] = match.expand(target.replace("$", "\\"))
        self.assertEqual(seen, {
            "/scalable-shop-cm-server/buy": "/buy",
            "/scalable-shop-cm-server/getAllUserBuys/joe": "/getAllUserBuys/joe",
            "/scalable-shop-cm-server/getAllUserBuys/a/b": "/getAllUserBuys/a/b",
            "/scalable-shop-cm-server/shop.js": "/shop.js",
            "/scalable-shop-cm-server/shop.css": "/shop.css",
            "/scalable-shop-cm-server/": "/",
        })
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

    def test_both_charts_turn_jwt_on_by_default_with_the_secret_mounted_as_files(self):
        for chart in CHARTS:
            with self.subTest(chart=chart):
                spec = of_kind(render(chart), "Deployment")[0]["spec"]["template"]["spec"]
                container = spec["containers"][0]
                env = env_of(container)
                self.assertEqual(env["AUTH_MODE"]["value"], "jwt")
                self.assertEqual(env["SECRETS_DIR"]["value"], "/etc/scalable-shop/secrets")
                self.assertIn("AUTH_ISSUER", env)
                self.assertIn("AUTH_AUDIENCE", env)
                # Secrets are files, never environment variables.
                for name in ("AUTH_JWT_SECRET", "CM_API_SERVICE_TOKEN"):
                    self.assertNotIn(name, env)
                mount = next(m for m in container["volumeMounts"] if m["name"] == "auth-secrets")
                self.assertEqual((mount["mountPath"], mount["readOnly"]), ("/etc/scalable-shop/secrets", True))
                volume = next(v for v in spec["volumes"] if v["name"] == "auth-secrets")
                self.assertEqual(volume["secret"]["secretName"], "scalable-shop-auth")
                jwks = {"auth": {"jwksConfigMap": {"name": "idp-keys", "key": "keys.json"}}}
                spec = of_kind(render(chart, jwks), "Deployment")[0]["spec"]["template"]["spec"]
                self.assertEqual(env_of(spec["containers"][0])["AUTH_JWKS_FILE"]["value"],
                                 "/etc/scalable-shop/jwks/keys.json")
                self.assertIn({"name": "auth-jwks", "configMap": {"name": "idp-keys"}}, spec["volumes"])
                none = of_kind(render(chart, {"auth": {"mode": "none"}}), "Deployment")[0]["spec"]["template"]["spec"]
                self.assertEqual(env_of(none["containers"][0])["AUTH_MODE"]["value"], "none")
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
                for name in env_of(container):
                    with self.subTest(chart=chart, values=label, variable=name):
                        self.assertIn(name, known)

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
        acls = {o["metadata"]["name"]: o["spec"]["authorization"]["acls"] for o in cluster if o["kind"] == "KafkaUser"}
        for chart in CHARTS:
            env = env_of(of_kind(render(chart), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0])
            topic = env["KAFKA_TOPIC"]["value"]
            with self.subTest(chart=chart):
                self.assertEqual(env["KAFKA_BROKERS"]["value"], bootstrap)
                self.assertIn(topic, topics)
                self.assertEqual(kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"],
                                 env["KAFKA_SASL_MECHANISM"]["value"].lower())
                granted = {(a["resource"].get("name"), op) for a in acls[chart] for op in a["operations"]}
                if chart == "cm-server":
                    self.assertIn((topic, "Write"), granted)
                else:
                    self.assertIn(f"{topic}.dlq", topics)
                    self.assertTrue({(topic, "Read"), (env["KAFKA_GROUPID"]["value"], "Read"),
                                     (f"{topic}.dlq", "Write")} <= granted)

    def test_dockerfile_agrees_with_the_charts(self):
        dockerfile = (ROOT / "Dockerfile").read_text()
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
