"""The fleet on one machine (make fleet): the shop as the cluster runs it.

K cm-server and M cm-api replicas (FLEET_SERVERS and FLEET_APIS, default 2 and 2) on kafka-mock
and SecantusDB, all in one consumer group; nginx (Debian's package) in front as the cluster's front
door on http://localhost:8080/scalable-shop-cm-server/ (INGRESS_PORT), configured from the
cm-server chart's rendered objects:

- by default (FLEET_FRONT_DOOR=httproute) its HTTPRoute and NGINX Gateway Fabric's policies for
  it, the way NGINX Gateway Fabric 2.6 turns them into nginx configuration (exact and prefix
  locations, URLRewrite, RequestRedirect, RequestHeaderModifier, read timeout, body size);
- or (FLEET_FRONT_DOOR=ingress) its Ingress, the way ingress-nginx did (regex location,
  rewrite-target, x-forwarded-prefix, body size, read timeout, limit-connections, limit-rps,
  permanent-redirect).

Anything else is the front door's 404, and a filter, policy or annotation the translation does not
know stops the fleet rather than being ignored. nginx balances over cm-server's ready replicas with
ingress-nginx's mechanism: a Lua balancer (fleet_balancer.lua, Debian's libnginx-mod-http-lua)
that takes the endpoints from a local port and follows every change without a reload, so a replica
can join or leave under load without closing a client's connection. Prometheus (Debian's package)
scrapes every replica, discovered from files the fleet rewrites as replicas come and go
(file_sd_configs), with the labels the charts' pod-annotation scraping gives (namespace, pod).
Authentication is on as the charts set it (AUTH_MODE=jwt, HS256 with a secret of the fleet's own,
mounted as files in SECRETS_DIR); the fleet prints a token.

`python -m shoptest.fleet` (make fleet) runs it until SIGINT or SIGTERM (then everything stops); the Fleet class
is what the fleet tests start.
"""

import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from shoptest import ROOT, charts
from shoptest.charts import NAMESPACE
from shoptest.launcher import Process, Shop, supervise
from shoptest.net import free_port, http_get, listening
from shoptest.waiting import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ISSUER = "scalable-shop"
AUDIENCE = "scalable-shop"
# The annotations translate_ingress() knows; any other on a rendered Ingress stops the fleet.
KNOWN_ANNOTATIONS = {
    "nginx.ingress.kubernetes.io/use-regex", "nginx.ingress.kubernetes.io/rewrite-target",
    "nginx.ingress.kubernetes.io/x-forwarded-prefix", "nginx.ingress.kubernetes.io/proxy-body-size",
    "nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/limit-connections",
    "nginx.ingress.kubernetes.io/limit-rps", "nginx.ingress.kubernetes.io/permanent-redirect",
}
# ingress-nginx's defaults where the translation needs them (its ConfigMap's documented values).
LIMIT_BURST_MULTIPLIER = 5
PROXY_NEXT_UPSTREAM_TRIES = 3
LIMIT_STATUS = 503
PERMANENT_REDIRECT_CODE = 301


def translate_ingress(ingresses, port, configuration_port, folder):
    """nginx.conf for `ingresses` as ingress-nginx would write it (the parts the chart uses). The
    Service's endpoints are not in it: as in ingress-nginx, a Lua balancer (fleet_balancer.lua)
    takes them from POST /configuration/backends on `configuration_port` and follows every change
    without a reload."""
    zones, locations = [], []
    for ingress in ingresses:
        name = ingress["metadata"]["name"]
        notes = ingress["metadata"].get("annotations", {})
        unknown = set(notes) - KNOWN_ANNOTATIONS
        if unknown:
            raise RuntimeError(f"Ingress {name}: the fleet does not translate {sorted(unknown)}")
        regex = notes.get("nginx.ingress.kubernetes.io/use-regex") == "true"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                lines = []
                # ingress-nginx: a regex path is a case-insensitive location anchored at the start.
                if regex:
                    head = f'location ~* "^{path["path"]}" {{'
                else:
                    head = f'location {path["path"]} {{'
                if "nginx.ingress.kubernetes.io/permanent-redirect" in notes:
                    lines.append(f'return {PERMANENT_REDIRECT_CODE} {notes["nginx.ingress.kubernetes.io/permanent-redirect"]};')
                    locations.append((head, lines))
                    continue
                if "nginx.ingress.kubernetes.io/limit-connections" in notes:
                    zone = f"{name}_conn"
                    zones.append(f"limit_conn_zone $binary_remote_addr zone={zone}:5m;")
                    lines.append(f'limit_conn {zone} {notes["nginx.ingress.kubernetes.io/limit-connections"]};')
                    lines.append(f"limit_conn_status {LIMIT_STATUS};")
                if "nginx.ingress.kubernetes.io/limit-rps" in notes:
                    zone = f"{name}_rps"
                    rps = int(notes["nginx.ingress.kubernetes.io/limit-rps"])
                    zones.append(f"limit_req_zone $binary_remote_addr zone={zone}:5m rate={rps}r/s;")
                    lines.append(f"limit_req zone={zone} burst={rps * LIMIT_BURST_MULTIPLIER} nodelay;")
                    lines.append(f"limit_req_status {LIMIT_STATUS};")
                if "nginx.ingress.kubernetes.io/proxy-body-size" in notes:
                    lines.append(f'client_max_body_size {notes["nginx.ingress.kubernetes.io/proxy-body-size"]};')
                if "nginx.ingress.kubernetes.io/proxy-read-timeout" in notes:
                    lines.append(f'proxy_read_timeout {notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]}s;')
                if "nginx.ingress.kubernetes.io/x-forwarded-prefix" in notes:
                    lines.append(f'proxy_set_header X-Forwarded-Prefix "{notes["nginx.ingress.kubernetes.io/x-forwarded-prefix"]}";')
                if "nginx.ingress.kubernetes.io/rewrite-target" in notes:
                    lines.append(f'rewrite "(?i){path["path"]}" {notes["nginx.ingress.kubernetes.io/rewrite-target"]} break;')
                lines += [
                    "proxy_http_version 1.1;",
                    'proxy_set_header Connection "";',
                    "proxy_set_header Host $host;",
                    # ingress-nginx without use-forwarded-headers: the client is whoever connected.
                    "proxy_set_header X-Forwarded-For $remote_addr;",
                    "proxy_set_header X-Real-IP $remote_addr;",
                    "proxy_set_header X-Request-ID $request_id;",
                    "proxy_next_upstream error timeout;",
                    f"proxy_next_upstream_tries {PROXY_NEXT_UPSTREAM_TRIES};",
                    "proxy_pass http://upstream_balancer;",
                ]
                locations.append((head, lines))
    return nginx_conf(zones, locations, port, configuration_port, folder, "Ingress objects")


# The headers NGINX Gateway Fabric sets on every proxied request (v2.6.7,
# internal/controller/nginx/config/servers.go), then the ones this fleet's balancer needs.
GATEWAY_PROXY_HEADERS = [
    "proxy_set_header Host $host;",
    "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
    "proxy_set_header X-Real-IP $remote_addr;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "proxy_set_header X-Forwarded-Host $host;",
    "proxy_set_header X-Forwarded-Port $server_port;",
]
# The route kinds and filters translate_httproute() knows; anything else stops the fleet.
KNOWN_FILTERS = {"URLRewrite", "RequestHeaderModifier", "RequestRedirect"}


def _prefix_rewrite(match_path, replacement):
    """NGINX Gateway Fabric's rewrite for ReplacePrefixMatch on a PathPrefix match."""
    regex = f"^{match_path.replace('$', chr(92) + '$')}([^?]*)?"
    target = f"{replacement or '/'}$1?$args?"
    if replacement.endswith("/") and not match_path.endswith("/"):
        regex = f"^{match_path}(?:/([^?]*))?"
    if match_path.endswith("/") and not replacement.endswith("/"):
        target = f"{replacement}/$1?$args?"
    return f"{regex} {target}"


def translate_httproute(objects, port, configuration_port, folder):
    """nginx.conf for the cm-server chart's HTTPRoute (and NGINX Gateway Fabric's policies
    attached to it) as NGINX Gateway Fabric 2.6 writes it, for the parts the chart uses: an Exact
    match is `location = path`, a PathPrefix match `location prefix/` and `location = prefix`;
    URLRewrite's ReplaceFullPath is `rewrite ^ path break`, ReplacePrefixMatch its prefix regex;
    RequestRedirect a rewrite and `return`; RequestHeaderModifier's set `proxy_set_header`;
    ProxySettingsPolicy's read timeout and ClientSettingsPolicy's body size the directives of the
    same names. Gateway API's rule timeouts (which NGINX Gateway Fabric refuses) are taken as the
    read timeout. Balanced, like the Ingress, by the Lua balancer over the ready replicas."""
    routes = [o for o in objects if o["kind"] == "HTTPRoute"]
    policy_lines = {}
    for policy in objects:
        if policy["kind"] == "HTTPRoute":
            continue
        refs = policy["spec"].get("targetRefs") or [policy["spec"].get("targetRef")]
        lines = []
        if policy["kind"] == "ProxySettingsPolicy" and "read" in policy["spec"].get("timeout", {}):
            lines.append(f'proxy_read_timeout {policy["spec"]["timeout"]["read"]};')
        elif policy["kind"] == "ClientSettingsPolicy" and "maxSize" in policy["spec"].get("body", {}):
            lines.append(f'client_max_body_size {policy["spec"]["body"]["maxSize"]};')
        else:
            raise RuntimeError(f"{policy['kind']} {policy['metadata']['name']}: the fleet does not translate it")
        for ref in refs:
            policy_lines.setdefault(ref["name"], []).extend(lines)
    locations = []
    for route in routes:
        name = route["metadata"]["name"]
        for rule in route["spec"]["rules"]:
            unknown = {f["type"] for f in rule.get("filters", [])} - KNOWN_FILTERS
            if unknown or set(rule) - {"matches", "filters", "backendRefs", "timeouts"}:
                raise RuntimeError(f"HTTPRoute {name}: the fleet does not translate {sorted(unknown) or sorted(rule)}")
            for match in rule["matches"]:
                if set(match) != {"path"}:
                    raise RuntimeError(f"HTTPRoute {name}: the fleet translates path matches only, not {match}")
                kind, value = match["path"]["type"], match["path"]["value"]
                if kind == "Exact":
                    heads = [f"location = {value} {{"]
                elif kind == "PathPrefix":
                    base = value.rstrip("/")
                    heads = [f"location {base}/ {{", f"location = {base} {{"]
                else:
                    raise RuntimeError(f"HTTPRoute {name}: the fleet does not translate {kind} paths")
                lines, redirect = [], None
                for item in rule.get("filters", []):
                    if item["type"] == "URLRewrite":
                        path = item["urlRewrite"]["path"]
                        if path["type"] == "ReplaceFullPath":
                            lines.append(f'rewrite ^ {path["replaceFullPath"]} break;')
                        else:
                            lines.append(f'rewrite {_prefix_rewrite(value, path["replacePrefixMatch"])} break;')
                    elif item["type"] == "RequestHeaderModifier":
                        for header in item["requestHeaderModifier"].get("set", []):
                            lines.append(f'proxy_set_header {header["name"]} "{header["value"]}";')
                    else:
                        redirect = item["requestRedirect"]
                if redirect is not None:
                    path = redirect.get("path")
                    body = f"$scheme://$host:{port}$request_uri"
                    if path:
                        lines.append(f'rewrite ^ {path["replaceFullPath"]};')
                        body = f"$scheme://$host:{port}$uri$is_args$args"
                    lines.append(f'return {redirect.get("statusCode", 302)} "{body}";')
                else:
                    if "timeouts" in rule:
                        lines.append(f'proxy_read_timeout {rule["timeouts"]["request"]};')
                    lines += policy_lines.get(name, [])
                    lines += GATEWAY_PROXY_HEADERS + [
                        "proxy_http_version 1.1;",
                        'proxy_set_header Connection "";',
                        "proxy_pass http://upstream_balancer;",
                    ]
                locations += [(head, lines) for head in heads]
    return nginx_conf([], locations, port, configuration_port, folder, "HTTPRoute and its policies")


def nginx_conf(zones, locations, port, configuration_port, folder, source):
    zone_lines = "\n".join(f"  {zone}" for zone in sorted(set(zones)))
    body = "\n".join(f"    {head}\n" + "".join(f"      {line}\n" for line in lines) + "    }" for head, lines in locations)
    temp = {name: os.path.join(folder, name) for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    modules = "/usr/lib/nginx/modules"
    return f"""# Written by shoptest/fleet.py from the cm-server chart's rendered {source}.
load_module {modules}/ndk_http_module.so;
load_module {modules}/ngx_http_lua_module.so;
daemon off;
worker_processes 1;
pid {os.path.join(folder, "nginx.pid")};
error_log {os.path.join(folder, "error.log")} warn;
events {{ worker_connections 1024; }}
http {{
  access_log {os.path.join(folder, "access.log")};
  client_body_temp_path {temp["body"]};
  proxy_temp_path {temp["proxy"]};
  fastcgi_temp_path {temp["fastcgi"]};
  uwsgi_temp_path {temp["uwsgi"]};
  scgi_temp_path {temp["scgi"]};
  lua_package_path "{HERE}/?.lua;;";
  lua_shared_dict configuration_data 1m;
  init_worker_by_lua_block {{ require("fleet_balancer").init_worker() }}
  # ingress-nginx's upstream: a placeholder server, the Lua balancer, and its keep-alive (60 s,
  # under the services' 75 s idle timeout).
  upstream upstream_balancer {{
    server 0.0.0.1;
    balancer_by_lua_block {{ require("fleet_balancer").balance() }}
    keepalive 320;
    keepalive_timeout 60s;
  }}
{zone_lines}
  server {{
    listen 127.0.0.1:{port} default_server;
{body}
    # The controller's default backend: anything no route matches.
    location / {{ return 404; }}
  }}
  # The controller's own port (ingress-nginx: 10246), where the endpoints are posted.
  server {{
    listen 127.0.0.1:{configuration_port};
    location = /configuration/backends {{
      client_body_buffer_size 64k;
      content_by_lua_block {{ require("fleet_balancer").configure() }}
    }}
  }}
}}
"""


class Fleet(Shop):
    """The shop with `servers` cm-server and `apis` cm-api replicas, nginx and Prometheus."""

    def __init__(self, servers=2, apis=2, ingress_port=None, prometheus_port=None, env=None, auth=True,
                 chart_values=None, front_door="httproute", **options):
        self.secrets_dir = tempfile.mkdtemp(prefix="fleet-secrets.")
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        for name, value in (("auth-jwt-secret", self.secret),
                            ("cm-api-service-token", base64.b64encode(secrets.token_bytes(32)).decode())):
            with open(os.path.join(self.secrets_dir, name), "w") as f:
                f.write(value)
        settings = {"AUTH_MODE": "jwt", "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
                    "SECRETS_DIR": self.secrets_dir,
                    # The ingress is the only proxy; its address is where X-Forwarded-For is believed.
                    "TRUSTED_PROXIES": "127.0.0.1"}
        # The front door: the chart's HTTPRoute as NGINX Gateway Fabric serves it (the runbook's),
        # or its Ingress as ingress-nginx served it.
        if front_door not in ("httproute", "ingress"):
            raise ValueError(f"front_door is httproute or ingress, not {front_door!r}")
        self.front_door = front_door
        # auth=False: the original contract behind the front door, chosen explicitly as the chart asks.
        self.chart_values = {} if auth else {"auth": {"mode": "none"}, "ingress": {"allowUnauthenticated": True},
                                             "httpRoute": {"allowUnauthenticated": True}}
        # More of the cm-server chart's values for its HTTPRoute or Ingress (merged).
        self.chart_values = charts.deep_merge(self.chart_values, chart_values or {})
        if not auth:
            settings = {"AUTH_MODE": "none", "TRUSTED_PROXIES": "127.0.0.1"}
        super().__init__(env=dict(settings, **(env or {})), **options)
        self.servers, self.apis = servers, apis
        self.ingress_port = ingress_port or free_port()
        self.prometheus_port = prometheus_port or free_port()
        self.ingress_url = f"http://localhost:{self.ingress_port}/scalable-shop-cm-server/"
        self.prometheus_url = f"http://127.0.0.1:{self.prometheus_port}"
        # The ingress controller's own port, where cm-server's endpoints are posted.
        self.configuration_url = f"http://127.0.0.1:{free_port()}"
        self.replica_ports = {}
        self.templates = {}  # service -> (argv, env) its replicas start with
        self.serials = {}  # service -> the number of the newest replica (names are never reused)
        self.endpoints = []  # the cm-server replicas the ingress balances over: the ready ones
        self.terminating = {}  # name -> Process of replicas being deleted (out of processes)
        self.terminated = []  # the Process of every replica stopped, for its log
        self._lock = threading.RLock()
        self._targets_folder = None

    def replicas(self, service):
        """The names of `service`'s replicas, in start order (the first is Shop's own until a
        rolling restart replaces it)."""
        with self._lock:
            return [name for name in self.processes if name == service or name.startswith(service + "-")]

    def replica_url(self, name):
        return f"http://127.0.0.1:{self.replica_ports[name]}"

    def url(self, name):
        """Any replica's URL (Shop's metrics() and ready() then work for each)."""
        return self.replica_url(name) if name in self.replica_ports else super().url(name)

    def add_replica(self, service, wait=True):
        """Starts one more replica of `service` like the first, on a port of its own; its name.
        `wait`: until it is ready (a replica that cannot become ready, MongoDB down say, is still
        a replica, as a pod is: the autoscaler does not wait). A cm-server replica always waits:
        it joins the ingress's endpoints once ready, as a pod joins its Service's."""
        argv, env = self.templates[service]
        port = free_port()
        with self._lock:
            self.serials[service] = self.serials.get(service, 1) + 1
            name = f"{service}-{self.serials[service]}"
            self.processes[name] = Process(name, argv, dict(env, PORT=str(port)), self.log_dir)
            self.replica_ports[name] = port
            self.processes[name].start()
        self.write_targets()
        if wait or service == "cm-server":
            self._wait(name, lambda: http_get(self.replica_url(name), "/readyz")[0] == 200, 120)
        if service == "cm-server" and "nginx" in self.processes:
            with self._lock:
                endpoints = self.endpoints + [name]
            self.set_endpoints(endpoints)
        return name

    def remove_replica(self, service, grace=None, number=signal.SIGTERM):
        """Stops the newest extra replica of `service` (terminate_replica); its name and exit
        status."""
        name = [n for n in self.replicas(service) if n != service][-1]
        return name, self.terminate_replica(name, grace or 30, number=number)

    def terminate_replica(self, name, grace=30, pre_stop=0, number=signal.SIGTERM):
        """Stops one replica as Kubernetes deletes a pod: it leaves the ingress's endpoints at once
        (the endpoints controller acts beside the kubelet, and the ingress's worker follows within
        its sync interval), its preStop pause of `pre_stop` seconds runs, then `number` (SIGTERM;
        SIGKILL for a pod lost at that moment, with no pause), and SIGKILL once `grace` seconds
        have passed since the deletion. Returns its exit status."""
        self.begin_termination(name)
        return self.finish_termination(name, grace, pre_stop, number)

    def begin_termination(self, name):
        """The deletion's first, immediate part: the replica no longer counts as one of its
        service's (replicas()) and leaves the ingress's endpoints; it still runs and is scraped."""
        with self._lock:
            self.terminating[name] = self.processes.pop(name)
            endpoints = [n for n in self.endpoints if n != name]
            changed = endpoints != self.endpoints
        if changed:
            self.set_endpoints(endpoints, wait=False)

    def finish_termination(self, name, grace=30, pre_stop=0, number=signal.SIGTERM):
        """The rest: the preStop pause, the signal, SIGKILL after the grace period; the exit status."""
        process = self.terminating[name]
        if number != signal.SIGKILL and pre_stop:
            # The pod's preStop hook, which is itself a sleep (lifecycle.preStop.sleep).
            time.sleep(pre_stop)
        status = process.stop(number, max(grace - pre_stop, 1))
        with self._lock:
            del self.terminating[name]
            del self.replica_ports[name]
            self.terminated.append(process)
        self.write_targets()
        return status

    def set_endpoints(self, names, wait=True):
        """Posts cm-server's replicas `names` to the ingress's balancer as its endpoints; `wait`:
        until its worker balances over them."""
        with self._lock:
            self.endpoints = list(names)
            body = "".join(f"127.0.0.1:{self.replica_ports[name]}\n" for name in names)
            request = urllib.request.Request(self.configuration_url + "/configuration/backends", body.encode(),
                                             method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 201, answer.status
        if wait and not wait_for(lambda: http_get(self.configuration_url, "/configuration/backends")[1].decode()
                                 == body, 10):
            raise RuntimeError(f"the ingress did not take the endpoints {names}")

    def write_targets(self):
        """Prometheus' targets, one file per service (file_sd_configs): a replica started or stopped
        is scraped or dropped as the pod discovery would."""
        if self._targets_folder is None:
            return
        with self._lock:
            for service in ("cm-server", "cm-api"):
                # A pod being deleted is still discovered (and scraped) until it is gone.
                names = self.replicas(service) + [n for n in self.terminating if n.rsplit("-", 1)[0] == service
                                                  or n == service]
                targets = [{"targets": [f"127.0.0.1:{self.replica_ports[name]}"],
                            "labels": {"namespace": NAMESPACE, "pod": name}} for name in names]
                path = os.path.join(self._targets_folder, f"{service}.json")
                with open(path + ".new", "w") as f:
                    json.dump(targets, f)
                os.replace(path + ".new", path)

    def start(self, say=lambda line: None):
        super().start(say)
        self.replica_ports["cm-server"] = self.ports["server"]
        self.replica_ports["cm-api"] = self.ports["api"]
        self.templates = {service: (self.processes[service].argv, self.processes[service].env)
                          for service in ("cm-server", "cm-api")}
        for _ in range(self.apis - 1):
            say(f"cm-api     {self.replica_url(self.add_replica('cm-api'))}")
        for _ in range(self.servers - 1):
            say(f"cm-server  {self.replica_url(self.add_replica('cm-server'))}")
        self.start_ingress()
        say(f"front door {self.ingress_url} (nginx, from the cm-server chart's "
            f"{'HTTPRoute' if self.front_door == 'httproute' else 'Ingress'})")
        self.start_prometheus()
        say(f"Prometheus {self.prometheus_url}")
        return self

    def start_ingress(self):
        folder = os.path.join(self.data, "nginx")
        os.makedirs(folder, exist_ok=True)
        configuration_port = urllib.parse.urlsplit(self.configuration_url).port
        if self.front_door == "httproute":
            self.routes = charts.httproutes(self.chart_values)
            text = translate_httproute(self.routes, self.ingress_port, configuration_port, folder)
        else:
            self.ingresses = charts.ingresses("localhost", self.chart_values)
            text = translate_ingress(self.ingresses, self.ingress_port, configuration_port, folder)
        config = os.path.join(folder, "nginx.conf")
        with open(config, "w") as f:
            f.write(text)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.processes["nginx"] = Process("nginx", [nginx, "-e", os.path.join(folder, "error.log"), "-p", folder,
                                                    "-c", config], self._environment(), self.log_dir)
        self.processes["nginx"].start()
        self._wait("nginx", lambda: listening(self.ingress_port), 30)
        self.set_endpoints(self.replicas("cm-server"))

    def start_prometheus(self):
        import yaml

        folder = os.path.join(self.data, "prometheus")
        os.makedirs(folder, exist_ok=True)
        self._targets_folder = folder
        self.write_targets()
        jobs = [{"job_name": service,
                 "file_sd_configs": [{"files": [os.path.join(folder, f"{service}.json")], "refresh_interval": "1s"}]}
                for service in ("cm-server", "cm-api")]
        config = os.path.join(folder, "prometheus.yml")
        with open(config, "w") as f:
            yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                            "scrape_configs": jobs}, f)
        prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
        self.processes["prometheus"] = Process(
            "prometheus", [prometheus, f"--config.file={config}", f"--storage.tsdb.path={folder}/data",
                           f"--web.listen-address=127.0.0.1:{self.prometheus_port}"], self._environment(), self.log_dir)
        self.processes["prometheus"].start()
        self._wait("prometheus", lambda: http_get(self.prometheus_url, "/-/ready")[0] == 200, 60)

    def token(self, sub, username, admin=False):
        """A token as `cm-server token` mints it, with the fleet's secret."""
        command = [os.path.join(self.bin_dir, "cm-server"), "token", "--sub", sub, "--username", username]
        env = {"PATH": os.environ.get("PATH", ""), "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
               "SECRETS_DIR": self.secrets_dir}
        return subprocess.run(command + (["--admin"] if admin else []), env=env, capture_output=True, text=True,
                              timeout=60, check=True).stdout.strip()

    def stop(self, say=lambda line: None):
        # The front first, then the extra replicas (newest first), then the shop as Shop stops it.
        for process in list(self.terminating.values()):
            process.stop()
        for name in ["prometheus", "nginx"] + [n for n in reversed(list(self.processes)) if re.search(r"-\d+$", n)]:
            if name in self.processes:
                self.processes[name].stop()
        super().stop(say)
        shutil.rmtree(self.secrets_dir, ignore_errors=True)


def main():
    env = os.environ
    fleet = Fleet(servers=int(env.get("FLEET_SERVERS") or 2), apis=int(env.get("FLEET_APIS") or 2),
                  ingress_port=int(env.get("INGRESS_PORT") or 8080),
                  prometheus_port=int(env.get("PROMETHEUS_PORT") or 9090),
                  front_door=env.get("FLEET_FRONT_DOOR") or "httproute",
                  bin_dir=env.get("BIN_DIR") or os.path.join(ROOT, ".build", "release"), log_level="info")
    def up():
        token = fleet.token("005", "joe")
        return f"""
The fleet is up: {fleet.ingress_url} (logs: {fleet.log_dir}; Ctrl-C stops everything)

  TOKEN={token}
  curl -X POST {fleet.ingress_url}buy -H "Authorization: Bearer $TOKEN" \\
       -H 'Content-Type: application/json' -d '{{"username":"joe","userid":"005","price":"1195.30"}}'
  curl -H "Authorization: Bearer $TOKEN" {fleet.ingress_url}getAllUserBuys/joe
  Prometheus: {fleet.prometheus_url}/graph"""

    return supervise(fleet, "make fleet", up)

if __name__ == "__main__":
    sys.exit(main())
