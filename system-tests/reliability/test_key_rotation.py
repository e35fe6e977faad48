"""Keys rotate under load with no refused request (docs/SECURITY.md, "Rotating keys").

Purchases and list reads go on all the time (acknowledged POST /buy and GET /getAllUserBuys, each
with the caller's token, the list through cm-api with the service token), while:

- the identity provider's key set changes in a directory laid out as Kubernetes mounts a
  ConfigMap (the `..data` symlink swapped atomically): a new key is published beside the old one,
  tokens are signed with it at once, then the old key is retired. No process restarts.
- the HS256 secret and the service token change in the three steps of the runbook, each a rolling
  update: every replica is replaced by one reading the Secret's new files (a directory per
  generation, as a pod mounts the Secret as it is when it starts), the new one ready and in the
  balancer before the old one leaves it and stops. nginx is the Services' stand-in in front of
  cm-server and of cm-api (a reload per change; it serves on through one).

Every answer during the rotations must be a 200; after each retirement the old key's tokens are
refused (401), so the test cannot pass by accepting everything.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from shoptest.launcher import Process, Shop
from shoptest.net import free_port, http_get, listening
from shoptest.waiting import wait_for

ISSUER = "https://id.scalable-shop.test/"
AUDIENCE = "scalable-shop"
ALICE = ("a-001", "alice")


def b64url(number, size):
    return base64.urlsafe_b64encode(number.to_bytes(size, "big")).rstrip(b"=").decode()


def token(key, kid=None, algorithm="ES256"):
    now = int(time.time())
    claims = {"sub": ALICE[0], "preferred_username": ALICE[1], "iss": ISSUER, "aud": AUDIENCE, "iat": now,
              "exp": now + 600}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def key_set(*keys):
    """A JSON Web Key Set of the public halves of (kid, P-256 private key) pairs."""
    entries = []
    for kid, key in keys:
        numbers = key.public_key().public_numbers()
        entries.append({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                        "x": b64url(numbers.x, 32), "y": b64url(numbers.y, 32)})
    return json.dumps({"keys": entries})


def call(url, method="GET", body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(headers or {}, **({"Content-Type": "application/json"} if data else {}))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers),
                                    timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


class Load:
    """Purchases and list reads one after another on a thread, each with `bearer()`'s token at
    that moment; every answer's status is counted."""

    def __init__(self, url, bearer):
        self.url, self.bearer = url.rstrip("/"), bearer
        self.statuses = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        purchase = {"username": ALICE[1], "userid": ALICE[0], "price": "1.00"}
        while not self.stopping.is_set():
            headers = {"Authorization": "Bearer " + self.bearer()}
            for method, path, body in (("POST", "/buy", purchase), ("GET", "/getAllUserBuys/alice?limit=1", None)):
                try:
                    status = call(self.url + path, method, body, headers)
                except OSError as error:
                    status = type(error).__name__
                self.statuses[status] = self.statuses.get(status, 0) + 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(60)

    def count(self):
        return sum(self.statuses.values())

    def runs(self, more=20, timeout=60):
        """Waits until `more` answers were counted since the call: the load is flowing."""
        goal = self.count() + more
        return wait_for(lambda: self.count() >= goal, timeout)


class ConfigMapDirectory:
    """A directory as the kubelet keeps a ConfigMap volume: each version in its own folder,
    `..data` a symlink to the current one, `jwks.json` a symlink through `..data`; an update is
    an atomic rename of a new `..data` link."""

    def __init__(self, folder, name="jwks.json"):
        self.folder, self.name, self.version = folder, name, 0
        os.makedirs(folder)
        self.path = os.path.join(folder, name)

    def write(self, text):
        self.version += 1
        version = f"..version-{self.version}"
        os.makedirs(os.path.join(self.folder, version))
        with open(os.path.join(self.folder, version, self.name), "w") as f:
            f.write(text)
        link = os.path.join(self.folder, "..data_tmp")
        os.symlink(version, link)
        os.replace(link, os.path.join(self.folder, "..data"))
        if not os.path.islink(self.path):
            os.symlink(os.path.join("..data", self.name), self.path)


class KeySetRotationTests(unittest.TestCase):
    def test_an_identity_providers_key_rotation_refuses_no_request(self):
        old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

        folder = tempfile.mkdtemp(prefix="jwks.")
        mounted = ConfigMapDirectory(os.path.join(folder, "jwks"))
        mounted.write(key_set(("2026-11", old)))
        # A reload interval longer than the test's steps: the new key is taken because a token
        # names it, not because a periodic reload came by.
        shop = Shop(env={"AUTH_MODE": "jwt", "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
                         "AUTH_JWKS_FILE": mounted.path, "AUTH_JWKS_RELOAD_S": 3600,
                         "CM_API_SERVICE_TOKEN": "a-service-token-of-at-least-32-bytes!!"}).start()
        signer = {"token": token(old, "2026-11")}
        try:
            with Load(shop.server_url, lambda: signer["token"]) as load:
                self.assertTrue(load.runs())
                # The provider publishes its next key beside the current one, then signs with it.
                mounted.write(key_set(("2026-11", old), ("2026-12", new)))
                signer["token"] = token(new, "2026-12")
                self.assertTrue(load.runs())
                # The old key is retired (test_a_retired_key_is_refused_after_the_periodic_reload
                # shows its tokens are then refused).
                mounted.write(key_set(("2026-12", new)))
                self.assertTrue(load.runs())
            self.assertEqual(load.statuses, {200: load.count()}, load.statuses)
        finally:
            shop.stop()
            shutil.rmtree(folder, ignore_errors=True)

    def test_a_retired_key_is_refused_after_the_periodic_reload(self):
        old, new = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        folder = tempfile.mkdtemp(prefix="jwks.")
        mounted = ConfigMapDirectory(os.path.join(folder, "jwks"))

        mounted.write(key_set(("old", old), ("new", new)))
        shop = Shop(env={"AUTH_MODE": "jwt", "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
                         "AUTH_JWKS_FILE": mounted.path, "AUTH_JWKS_RELOAD_S": 1,
                         "CM_API_SERVICE_TOKEN": "a-service-token-of-at-least-32-bytes!!"}).start()
        try:
            dry_run = shop.server_url + "/buy?dryRun=true"
            purchase = {"username": ALICE[1], "userid": ALICE[0], "price": "1.00"}
            for kid, key in (("old", old), ("new", new)):
                self.assertEqual(call(dry_run, "POST", purchase, {"Authorization": "Bearer " + token(key, kid)}), 200)
            mounted.write(key_set(("new", new)))
            old_token = token(old, "old")
            self.assertTrue(wait_for(lambda: call(dry_run, "POST", purchase,
                                                  {"Authorization": "Bearer " + old_token}) == 401, 30),
                            "the retired key was still accepted")
            self.assertEqual(call(dry_run, "POST", purchase, {"Authorization": "Bearer " + token(new, "new")}), 200)
        finally:
            shop.stop()
            shutil.rmtree(folder, ignore_errors=True)


class Services:
    """nginx in front of cm-server's and cm-api's replicas, as their Kubernetes Services: each
    change of the replicas rewrites the upstreams and reloads nginx, which finishes the requests
    in flight on its old workers."""

    def __init__(self, folder):
        self.folder = folder
        self.ports = {"cm-server": free_port(), "cm-api": free_port()}
        self.members = {"cm-server": [], "cm-api": []}
        self.generation = 0
        self.process = None

    def url(self, service):
        return f"http://127.0.0.1:{self.ports[service]}"

    def write(self):
        self.generation += 1
        upstreams, servers = [], []
        for service, port in self.ports.items():
            name = service.replace("-", "_")
            members = "".join(f"    server 127.0.0.1:{member};\n" for member in self.members[service])
            upstreams.append(f"  upstream {name} {{\n{members}  }}\n")
            servers.append(f"""  server {{
    listen 127.0.0.1:{port};
    # No keep-alive: a connection never outlives the worker a reload retires.
    keepalive_timeout 0;
    location = /nginx-generation {{ return 200 "{self.generation}"; }}
    location / {{
      proxy_pass http://{name};
      proxy_set_header Host $host;
      proxy_next_upstream error timeout;
    }}
  }}
""")
        temp = "".join(f"  {kind}_temp_path {self.folder}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                                   "uwsgi", "scgi"))
        with open(os.path.join(self.folder, "nginx.conf"), "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {self.folder}/nginx.pid;
error_log {self.folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
{temp}{''.join(upstreams)}{''.join(servers)}}}
""")

    def start(self, log_dir):
        self.write()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.command = [nginx, "-p", self.folder, "-c", os.path.join(self.folder, "nginx.conf"),
                        "-e", os.path.join(self.folder, "error.log")]
        self.process = Process("nginx", self.command, dict(os.environ), log_dir)
        self.process.start()
        assert wait_for(lambda: all(listening(port) for port in self.ports.values()), 30), "nginx did not start"

    def set(self, service, ports):
        """The Service's endpoints are `ports` once this returns."""
        self.members[service] = list(ports)
        self.write()
        subprocess.run(self.command + ["-s", "reload"], check=True, capture_output=True, timeout=30)
        expected = str(self.generation).encode()
        assert wait_for(lambda: http_get(self.url(service), "/nginx-generation")[1] == expected, 30), \
            "nginx did not reload"

    def stop(self):
        if self.process:
            self.process.stop()


class SecretRotationTests(unittest.TestCase):
    """The HS256 secret and the service token, rotated together in the runbook's three steps."""

    def test_rolling_changes_of_the_secret_and_the_service_token_refuse_no_request(self):
        old_secret, new_secret = "the-old-hs256-secret-of-at-least-32-bytes", "the-new-hs256-secret-of-at-least-32-bytes"
        old_token, new_token = "the-old-service-token-of-at-least-32-bytes", "the-new-service-token-of-at-least-32-bytes"
        folder = tempfile.mkdtemp(prefix="rotation.")
        services = Services(folder)
        generations = []

        def secrets(files):
            """A directory as a pod mounts the Secret when it starts."""
            directory = os.path.join(folder, f"secrets-{len(generations)}")
            os.makedirs(directory)
            for name, value in files.items():
                with open(os.path.join(directory, name), "w") as f:
                    f.write(value)
            generations.append(directory)
            return directory

        first = secrets({"auth-jwt-secret": old_secret, "cm-api-service-token": old_token})
        shop = Shop(env={"AUTH_MODE": "jwt", "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
                         "SECRETS_DIR": first, "CM_API_HOST": f"127.0.0.1:{services.ports['cm-api']}"})
        replicas = {}
        try:
            shop.start()
            replicas = {"cm-server": (shop.processes["cm-server"], shop.ports["server"]),
                        "cm-api": (shop.processes["cm-api"], shop.ports["api"])}
            services.members = {"cm-server": [shop.ports["server"]], "cm-api": [shop.ports["api"]]}
            services.start(shop.log_dir)

            def roll(service, directory):
                """Replaces `service`'s replica with one reading `directory`: the new one ready and
                in the Service before the old one leaves it and stops (maxSurge 1, maxUnavailable 0)."""
                old, old_port = replicas[service]
                port = free_port()
                process = Process(f"{service}-{len(generations)}", old.argv,
                                  dict(old.env, PORT=str(port), SECRETS_DIR=directory), shop.log_dir)
                process.start()
                self.assertTrue(wait_for(lambda: http_get(f"http://127.0.0.1:{port}", "/readyz")[0] == 200, 120),
                                process.tail())
                services.set(service, [old_port, port])
                services.set(service, [port])
                self.assertEqual(old.stop(), 0, old.tail(60))
                replicas[service] = (process, port)

            signer = {"secret": old_secret}
            with Load(services.url("cm-server"), lambda: token(signer["secret"], algorithm="HS256")) as load:
                self.assertTrue(load.runs())
                # 1. Both accept the next values; cm-server still presents the old service token.
                step = secrets({"auth-jwt-secret": old_secret, "auth-jwt-secret-next": new_secret,
                                "cm-api-service-token": old_token, "cm-api-service-token-next": new_token})
                roll("cm-api", step)
                roll("cm-server", step)
                self.assertTrue(load.runs())
                # 2. The new values become current (the old ones next); the identity provider signs
                #    with the new secret; cm-server presents the new token.
                step = secrets({"auth-jwt-secret": new_secret, "auth-jwt-secret-next": old_secret,
                                "cm-api-service-token": new_token, "cm-api-service-token-next": old_token})
                roll("cm-api", step)
                roll("cm-server", step)
                signer["secret"] = new_secret
                self.assertTrue(load.runs())
                # 3. The old values are retired.
                step = secrets({"auth-jwt-secret": new_secret, "cm-api-service-token": new_token})
                roll("cm-api", step)
                roll("cm-server", step)
                self.assertTrue(load.runs())
            self.assertEqual(load.statuses, {200: load.count()}, load.statuses)
            # Retired: the old secret's tokens and the old service token are refused.
            purchase = {"username": ALICE[1], "userid": ALICE[0], "price": "1.00"}
            self.assertEqual(call(services.url("cm-server") + "/buy?dryRun=true", "POST", purchase,
                                  {"Authorization": "Bearer " + token(old_secret, algorithm="HS256")}), 401)
            self.assertEqual(call(services.url("cm-api") + "/buyList/alice", headers={
                "Shop-Service-Token": old_token,
                "Authorization": "Bearer " + token(new_secret, algorithm="HS256")}), 401)
            self.assertEqual(call(services.url("cm-api") + "/buyList/alice", headers={
                "Shop-Service-Token": new_token,
                "Authorization": "Bearer " + token(new_secret, algorithm="HS256")}), 200)
        finally:
            for process, _ in replicas.values():
                process.stop()
            services.stop()
            shop.stop()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
