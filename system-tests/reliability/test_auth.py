"""Who may buy and who may look (docs/SECURITY.md): the shop with AUTH_MODE=jwt, attacked.

Two shops (debug binaries unless BIN_DIR says otherwise), started once for the module:

    HS   AUTH_JWT_SECRET (HS256), the development and small-deployment mode
    JWKS AUTH_JWKS_FILE with an RSA (RS256) and a P-256 (ES256) public key, as an identity
         provider publishes them; tokens signed by PyJWT, an independent library

Each hostile case sends one request and asserts its status, that the topic's end offsets did
not move (nothing produced) and that no purchase of the victim is in the answer (nothing
revealed). A few friendly cases show the same requests succeed with the right token, so a case
cannot pass because everything fails. Rate limits have their own shop with small limits.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shoptest import bad_input
from shoptest.fuzzing import fuzz
from shoptest.launcher import Shop
from shoptest.waiting import wait_for

ISSUER = "https://id.scalable-shop.test/"
AUDIENCE = "scalable-shop"
SECRET = "a-development-secret-of-at-least-32-bytes!"
SERVICE_TOKEN = "service-token-shared-by-cm-server-and-cm-api"
ALICE = ("a-001", "alice")
BOB = ("b-002", "bob")

HS = None
JWKS = None
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(who=ALICE, **overrides):
    now = int(time.time())
    body = {"sub": who[0], "preferred_username": who[1], "iss": ISSUER, "aud": AUDIENCE, "iat": now,
            "exp": now + 600}
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def hs256(payload, secret=SECRET, header=None):
    return jwt.encode(payload, secret, algorithm="HS256", headers=header)


def handmade(header, payload, key=None, digest=hashlib.sha256, signature=None):
    """A token assembled by hand: for headers and algorithms a careful library refuses to sign."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    if signature is None:
        signature = b64url(hmac.new(key, signing_input.encode(), digest).digest()) if key is not None else ""
    return signing_input + "." + signature


def request(port, method, path, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        connection.request(method, path, body=data, headers=all_headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def bearer(token):
    return {"Authorization": "Bearer " + token}


def purchase(who, price="10.00"):
    return {"userid": who[0], "username": who[1], "price": price}


def jwks_document():
    rsa_numbers = RSA_KEY.public_key().public_numbers()
    ec_numbers = EC_KEY.public_key().public_numbers()
    return {"keys": [
        {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
         "n": b64url(rsa_numbers.n.to_bytes(256, "big")), "e": b64url(rsa_numbers.e.to_bytes(3, "big"))},
        {"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
         "x": b64url(ec_numbers.x.to_bytes(32, "big")), "y": b64url(ec_numbers.y.to_bytes(32, "big"))},
    ]}


def setUpModule():
    global HS, JWKS
    # The idle and cm-api timeouts of the reliability suite's shop, which the corpus expects.
    common = {"AUTH_MODE": "jwt", "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE, "CM_API_TIMEOUT_MS": 1000,
              "HTTP_IDLE_TIMEOUT_MS": bad_input.IDLE_TIMEOUT_S * 1000}
    # The HS256 shop reads its secrets from files, as the charts mount them (SECRETS_DIR); the
    # JWKS shop from the environment.
    HS = Shop(env=dict(common, SECRETS_DIR=secrets_directory())).start()
    jwks_file = os.path.join(HS.data, "jwks.json")
    with open(jwks_file, "w") as f:
        json.dump(jwks_document(), f)
    JWKS = Shop(env=dict(common, AUTH_JWKS_FILE=jwks_file, CM_API_SERVICE_TOKEN=SERVICE_TOKEN)).start()


def secrets_directory():
    """A directory as Kubernetes mounts a Secret: one file per key."""
    directory = tempfile.mkdtemp(prefix="shop-secrets.")
    for name, value in (("auth-jwt-secret", SECRET), ("cm-api-service-token", SERVICE_TOKEN)):
        with open(os.path.join(directory, name), "w") as f:
            f.write(value + "\n")
    return directory


def tearDownModule():
    for shop in (HS, JWKS):
        if shop:
            shop.stop()


class AuthCase(unittest.TestCase):
    """Runs hostile requests against one shop: each answered `status`, nothing produced, nothing
    of the victim's revealed."""

    shop = None
    secrets = ()

    def hostile(self, cases, port=None):
        port = port or self.shop.ports["server"]
        failures = []
        # The topic's offsets once around the whole batch: asking kafka-mock costs about a quarter
        # of a second (a probe consumer and a ListOffsets per partition), which per case was half
        # of this module's time. A batch that produced names its cases for a rerun one by one.
        before = self.shop.topic_end_offsets()
        for name, method, path, headers, body, status in cases:
            got, answer_headers, answer = request(port, method, path, headers, body)
            problems = []
            if got != status:
                problems.append(f"status {got}, expected {status}")
            if got in (401, 403, 404):
                try:
                    error = json.loads(answer)
                    if error.get("status") != "Error" or not error.get("message"):
                        problems.append("not the contract's error shape")
                except ValueError:
                    problems.append("not JSON")
            if got == 401 and not answer_headers.get("www-authenticate", ""):
                problems.append("401 without WWW-Authenticate")
            # What the request itself named (a receipt's id in its path) is not a reveal.
            for secret in self.secrets:
                if secret not in path and secret.encode() in answer:
                    problems.append(f"revealed {secret}")
            if problems:
                failures.append(f"{name}: {', '.join(problems)}: {answer[:200]!r}")
        if self.shop.topic_end_offsets() != before:
            failures.append("something was produced by one of: " + ", ".join(case[0] for case in cases))
        self.assertEqual(failures, [], "\n".join(failures))
        return len(cases)


class TestHS256(AuthCase):
    @classmethod
    def setUpClass(cls):
        cls.shop = HS
        # The victim's purchase, bought with her own token and stored.
        status, _, body = request(HS.ports["server"], "POST", "/buy", bearer(hs256(claims(ALICE))),
                                  purchase(ALICE, "77.77"))
        assert status == 200, body
        cls.alice_purchase = json.loads(body)["purchaseId"]
        cls.secrets = (cls.alice_purchase, "77.77")
        service = {"Shop-Service-Token": SERVICE_TOKEN}
        admin = bearer(hs256(claims(("ops", "ops"), scope="shop:admin")))
        assert wait_for(lambda: request(HS.ports["api"], "GET", f"/purchases/{cls.alice_purchase}",
                                        dict(service, **admin))[0] == 200, 30), "alice's purchase was not stored"

    def test_the_right_token_buys_and_reads(self):
        port = HS.ports["server"]
        alice = bearer(hs256(claims(ALICE)))
        status, _, body = request(port, "GET", "/getAllUserBuys/alice", alice)
        self.assertEqual(status, 200, body)
        self.assertIn(self.alice_purchase, body.decode())
        status, _, body = request(port, "GET", "/getAllUserBuys/alice",
                                  bearer(hs256(claims(("ops", "ops"), scope="openid shop:admin"))))
        self.assertEqual(status, 200, body)
        self.assertIn(self.alice_purchase, body.decode())
        status, _, body = request(port, "POST", "/buy?dryRun=true", {"Authorization": "bearer " + hs256(claims())},
                                  purchase(ALICE))
        self.assertEqual(status, 200, "the scheme is case-insensitive (RFC 9110)")
        # Within the stated leeway (30 s), a token just expired or not yet valid is accepted.
        now = int(time.time())
        for name, token in (("expired 5 s ago", hs256(claims(exp=now - 5))),
                            ("valid in 5 s", hs256(claims(nbf=now + 5)))):
            status, _, body = request(port, "POST", "/buy?dryRun=true", bearer(token), purchase(ALICE))
            self.assertEqual(status, 200, f"{name}: {body}")

    def test_the_development_minter_signs_what_the_service_accepts(self):
        minter = [os.path.join(HS.bin_dir, "cm-server"), "token"]
        env = {"PATH": os.environ.get("PATH", ""), "AUTH_ISSUER": ISSUER, "AUTH_AUDIENCE": AUDIENCE,
               "SECRETS_DIR": HS.extra_env["SECRETS_DIR"]}
        token = subprocess.run(minter + ["--sub", "a-001", "--username", "alice"], env=env, capture_output=True,
                               text=True, timeout=60, check=True).stdout.strip()
        port = HS.ports["server"]
        status, _, body = request(port, "POST", "/buy?dryRun=true", bearer(token), purchase(ALICE))
        self.assertEqual(status, 200, body)
        decoded = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
        self.assertEqual(decoded["sub"], "a-001", "PyJWT reads what the minter signs")
        self.assertTrue(all(isinstance(decoded[claim], int) for claim in ("exp", "iat")),
                        f"NumericDates in whole seconds: {decoded}")
        admin = subprocess.run(minter + ["--sub", "ops", "--username", "ops", "--admin", "--ttl", "60"], env=env,
                               capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        status, _, body = request(port, "GET", "/getAllUserBuys/alice", bearer(admin))
        self.assertEqual(status, 200, body)
        self.assertIn(self.alice_purchase, body.decode())
        # Without the secret it says which variable, and exits 78 (EX_CONFIG); a bad user, 64.
        missing = subprocess.run(minter + ["--sub", "a", "--username", "a"], env=dict(env, SECRETS_DIR=""),
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(missing.returncode, 78, missing.stderr)
        self.assertIn("AUTH_JWT_SECRET", missing.stderr)
        bad = subprocess.run(minter + ["--sub", "a\tb", "--username", "a"], env=env, capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(bad.returncode, 64, bad.stderr)
        self.assertIn("control characters", bad.stderr)

    def corpus_headers(self):
        """An admin's token (the corpus reads several users' lists) for the corpus' own user."""
        token = hs256(claims(("c-1", "corpus"), scope="shop:admin", exp=int(time.time()) + 3600))
        return [f"Authorization: Bearer {token}", f"Shop-Service-Token: {SERVICE_TOKEN}"]

    def test_the_bad_input_corpus_answers_as_documented_with_a_token(self):
        headers = "".join(header + "\r\n" for header in self.corpus_headers()).encode()
        before = HS.topic_end_offsets()
        failures = []
        for name, service, data, allowed, check in bad_input.corpus():
            # After the request line, when there is one: the raw cases stay as malformed as they are.
            line_end = data.find(b"\r\n")
            if line_end > 0 and data[:line_end].endswith(b"HTTP/1.1"):
                data = data[:line_end + 2] + headers + data[line_end + 2:]
            answer = bad_input.send(HS.ports["server" if service == "cm-server" else "api"], data)
            problem = bad_input.judge(name, allowed, check, answer, bad_input.IDLE_TIMEOUT_S)
            if problem:
                failures.append(f"{name}: {problem}")
        self.assertEqual(failures, [], "\n".join(failures))
        self.assertEqual(HS.topic_end_offsets(), before, "a refused request reached the topic")

    def test_schemathesis_with_a_token(self):
        for service in ("cm-server", "cm-api"):
            result, summary = fuzz(HS, service, 50, self.corpus_headers())
            print(f"\n  {summary} (AUTH_MODE=jwt)")
            self.assertEqual(result.returncode, 0, result.stdout[-8000:] + result.stderr[-2000:])

    def test_forged_expired_and_malformed_tokens_are_401(self):
        now = int(time.time())
        good = hs256(claims(BOB))
        header, payload, signature = good.split(".")
        tampered = header + "." + b64url(json.dumps(claims(ALICE)).encode()) + "." + signature
        none_header = {"alg": "none", "typ": "JWT"}
        cases = [
            ("no Authorization", {}),
            ("Basic credentials", {"Authorization": "Basic " + base64.b64encode(b"alice:pw").decode()}),
            ("empty bearer", {"Authorization": "Bearer "}),
            ("not a JWT", bearer("abc")),
            ("two parts", bearer(header + "." + payload)),
            ("four parts", bearer(good + ".x")),
            ("alg none, no signature", bearer(handmade(none_header, claims(ALICE)))),
            ("alg none, with a signature", bearer(handmade(none_header, claims(ALICE), signature=signature))),
            ("alg NONE in capitals", bearer(handmade({"alg": "NONE"}, claims(ALICE)))),
            ("wrong secret", bearer(hs256(claims(ALICE), secret="another-secret-of-at-least-32-bytes!!"))),
            ("payload swapped under a valid signature", bearer(tampered)),
            ("signature stripped", bearer(header + "." + payload + ".")),
            ("HS512 with the right secret", bearer(handmade({"alg": "HS512"}, claims(ALICE), SECRET.encode(),
                                                            hashlib.sha512))),
            ("RS256 header, HMAC signature", bearer(handmade({"alg": "RS256"}, claims(ALICE), SECRET.encode()))),
            ("expired 2 minutes ago", bearer(hs256(claims(exp=now - 120)))),
            ("no exp", bearer(hs256(claims(exp=None)))),
            ("not valid for 10 minutes (nbf)", bearer(hs256(claims(nbf=now + 600)))),
            ("wrong issuer", bearer(hs256(claims(iss="https://evil.test/")))),
            ("no issuer", bearer(hs256(claims(iss=None)))),
            ("wrong audience", bearer(hs256(claims(aud="another-service")))),
            ("audience list without ours", bearer(hs256(claims(aud=["a", "b"])))),
            ("no audience", bearer(hs256(claims(aud=None)))),
            ("no sub", bearer(hs256(claims(sub=None)))),
            ("no preferred_username", bearer(hs256(claims(preferred_username=None)))),
            ("sub with a control character", bearer(hs256(claims(sub="a-001\n")))),
            ("sub of 129 bytes", bearer(hs256(claims(sub="x" * 129)))),
            ("scope as a list", bearer(hs256(claims(scope=["shop:admin"])))),
            ("critical header extension", bearer(hs256(claims(), header={"crit": ["exp"], "exp": 1}))),
            ("token of 9 KiB", bearer(hs256(claims(padding="x" * 9000)))),
            ("two Authorization headers", {"Authorization": f"Bearer {good}, Bearer {good}"}),
            ("token with a quote and a comma", {"Authorization": 'Bearer a",error="x'}),
        ]
        count = self.hostile([(name, "POST", "/buy", headers, purchase(ALICE), 401) for name, headers in cases])
        count += self.hostile([(name, "GET", "/getAllUserBuys/alice", headers, None, 401)
                               for name, headers in cases[:12]])
        self.assertGreaterEqual(count, 43)
        # The challenge says why, without echoing the token.
        status, headers, _ = request(HS.ports["server"], "POST", "/buy",
                                     bearer(hs256(claims(exp=now - 120))), purchase(ALICE))
        self.assertEqual(status, 401)
        self.assertRegex(headers["www-authenticate"], r'^Bearer realm="scalable-shop", error="invalid_token"')
        status, headers, _ = request(HS.ports["server"], "POST", "/buy", {}, purchase(ALICE))
        self.assertEqual(headers["www-authenticate"], 'Bearer realm="scalable-shop"')

    def test_a_valid_token_cannot_act_for_someone_else(self):
        bob = bearer(hs256(claims(BOB)))
        cases = [
            ("bob buys as alice", "POST", "/buy", bob, purchase(ALICE), 403),
            ("bob buys with alice's userid", "POST", "/buy", bob, {"userid": "a-001", "username": "bob", "price": "1"},
             403),
            ("bob buys with alice's username", "POST", "/buy", bob, {"userid": "b-002", "username": "alice",
                                                                    "price": "1"}, 403),
            ("bob's dry run as alice", "POST", "/buy?dryRun=true", bob, purchase(ALICE), 403),
            # A list shows its caller's own purchases under the name asked for (by sub): bob
            # asking for alice's name gets his own, none, and nothing of hers.
            ("bob lists alice", "GET", "/getAllUserBuys/alice", bob, None, 200),
            ("bob lists alice, percent-encoded", "GET", "/getAllUserBuys/%61lice", bob, None, 200),
            ("bob lists Alice", "GET", "/getAllUserBuys/Alice", bob, None, 200),
            ("a look-alike admin scope", "GET", "/getAllUserBuys/alice",
             bearer(hs256(claims(BOB, scope="shop:admins"))), None, 200),
            ("the admin scope in another claim", "GET", "/getAllUserBuys/alice",
             bearer(hs256(claims(BOB, scp="shop:admin"))), None, 200),
            ("a prefix of the admin scope", "GET", "/getAllUserBuys/alice",
             bearer(hs256(claims(BOB, scope="shop"))), None, 200),
        ]
        self.hostile(cases)
        status, _, body = request(HS.ports["server"], "GET", "/getAllUserBuys/alice", bob)
        self.assertEqual(json.loads(body)["purchases"], [])

    def test_a_username_given_to_another_subject_shows_it_nothing_of_the_first(self):
        """OIDC's preferred_username may change and be reused; sub may not. The name "alice"
        handed to a new subject c-003 lists only c-003's purchases under it, and alice, renamed,
        still lists hers under her old name."""
        port = HS.ports["server"]
        newcomer = bearer(hs256(claims(("c-003", "alice"))))
        self.hostile([("the new holder of alice's name lists alice", "GET", "/getAllUserBuys/alice", newcomer, None,
                       200)])
        status, _, body = request(port, "POST", "/buy", newcomer, purchase(("c-003", "alice"), "5.55"))
        self.assertEqual(status, 200, body)
        theirs = json.loads(body)["purchaseId"]
        admin = bearer(hs256(claims(("ops", "ops"), scope="shop:admin")))
        self.assertTrue(wait_for(lambda: theirs in request(port, "GET", "/getAllUserBuys/alice", admin)[2].decode(),
                                 30), "the newcomer's purchase was not stored")
        listed = json.loads(request(port, "GET", "/getAllUserBuys/alice", newcomer)[2])["purchases"]
        self.assertEqual([item["purchaseId"] for item in listed], [theirs])
        renamed = bearer(hs256(claims(("a-001", "alice-renamed"))))
        listed = json.loads(request(port, "GET", "/getAllUserBuys/alice", renamed)[2])["purchases"]
        self.assertIn(self.alice_purchase, [item["purchaseId"] for item in listed])
        self.assertNotIn(theirs, [item["purchaseId"] for item in listed])

    def test_names_are_compared_byte_for_byte(self):
        """"café" composed (NFC) and decomposed (NFD) are one string to Swift's == and two to
        MongoDB: a token for one neither buys as nor reads the other."""
        port = HS.ports["server"]
        composed, decomposed = "caf\u00e9", "cafe\u0301"
        token = bearer(hs256(claims(("d-004", composed))))
        status, _, body = request(port, "POST", "/buy", token, purchase(("d-004", decomposed)))
        self.assertEqual(status, 403, body)
        self.assertEqual([e["field"] for e in json.loads(body)["errors"]], ["username"])
        status, _, body = request(port, "POST", "/buy", token, purchase(("d-004", composed), "6.66"))
        self.assertEqual(status, 200, body)
        bought = json.loads(body)["purchaseId"]
        admin = bearer(hs256(claims(("ops", "ops"), scope="shop:admin")))

        def listed(name, who):
            path = "/getAllUserBuys/" + urllib.parse.quote(name, safe="")
            return [item["purchaseId"] for item in json.loads(request(port, "GET", path, who)[2])["purchases"]]

        self.assertTrue(wait_for(lambda: bought in listed(composed, admin), 30), "the purchase was not stored")
        self.assertEqual(listed(decomposed, admin), [], "the other normalisation is another name")
        self.assertEqual(listed(decomposed, bearer(hs256(claims(("d-004", decomposed))))), [])
        status, _, body = request(port, "POST", "/buy", bearer(hs256(claims(("d-004 ", composed)))),
                                  purchase(("d-004", composed)))
        self.assertEqual(status, 403, "a sub is its bytes: a trailing space is another subject")

    def test_an_idempotency_key_never_names_another_users_purchase(self):
        key = str(uuid.uuid4())
        port = HS.ports["server"]
        status, _, alice = request(port, "POST", "/buy", dict(bearer(hs256(claims(ALICE))), **{"Idempotency-Key": key}),
                                   purchase(ALICE))
        self.assertEqual(status, 200, alice)
        status, _, bob = request(port, "POST", "/buy", dict(bearer(hs256(claims(BOB))), **{"Idempotency-Key": key}),
                                 purchase(BOB))
        self.assertEqual(status, 200, bob)
        self.assertNotEqual(json.loads(alice)["purchaseId"], json.loads(bob)["purchaseId"])

    def test_cm_api_answers_only_cm_server_and_only_the_owner(self):
        service = {"Shop-Service-Token": SERVICE_TOKEN}
        bob = bearer(hs256(claims(BOB)))
        alice = bearer(hs256(claims(ALICE)))
        receipt = f"/purchases/{self.alice_purchase}"
        cases = [
            ("cm-api list without the service token", "GET", "/buyList/alice", alice, None, 401),
            ("cm-api list with a wrong service token", "GET", "/buyList/alice",
             dict(alice, **{"Shop-Service-Token": SERVICE_TOKEN[:-1] + "X"}), None, 401),
            ("cm-api list with the service token, no user token", "GET", "/buyList/alice", service, None, 401),
            ("cm-api list of alice for bob", "GET", "/buyList/alice", dict(service, **bob), None, 200),
            ("cm-api receipt without the service token", "GET", receipt, alice, None, 401),
            ("cm-api receipt, service token, no user token", "GET", receipt, service, None, 401),
            ("cm-api receipt of alice for bob", "GET", receipt, dict(service, **bob), None, 404),
            ("cm-api receipt, forged user token", "GET", receipt,
             dict(service, **bearer(hs256(claims(ALICE), secret="x" * 40))), None, 401),
        ]
        self.hostile(cases, port=HS.ports["api"])
        # Someone else's receipt reads exactly as a purchase that does not exist.
        unknown = str(uuid.uuid4())
        _, _, theirs = request(HS.ports["api"], "GET", receipt, dict(service, **bob))
        _, _, missing = request(HS.ports["api"], "GET", f"/purchases/{unknown}", dict(service, **bob))
        self.assertEqual(json.loads(theirs.replace(self.alice_purchase.encode(), b"ID")),
                         json.loads(missing.replace(unknown.encode(), b"ID")))
        status, _, body = request(HS.ports["api"], "GET", receipt, dict(service, **alice))
        self.assertEqual(status, 200, body)


class TestJWKS(AuthCase):
    @classmethod
    def setUpClass(cls):
        cls.shop = JWKS

    def test_tokens_from_an_independent_library_are_accepted(self):
        port = JWKS.ports["server"]
        for name, token in (
                ("RS256", jwt.encode(claims(ALICE), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})),
                ("ES256", jwt.encode(claims(ALICE), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"}))):
            status, _, body = request(port, "POST", "/buy", bearer(token), purchase(ALICE))
            self.assertEqual(status, 200, f"{name}: {body}")
            status, _, body = request(port, "GET", "/getAllUserBuys/alice", bearer(token))
            self.assertEqual(status, 200, f"{name}: {body}")

    def test_key_confusion_and_foreign_keys_are_401(self):
        public_pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(OTHER_RSA_KEY.public_key()))
        cases = [
            ("HS256 keyed with the RSA public key (PEM)",
             handmade({"alg": "HS256", "kid": "rsa-1"}, claims(ALICE), public_pem)),
            ("HS256 keyed with the JWKS document",
             handmade({"alg": "HS256", "kid": "rsa-1"}, claims(ALICE), json.dumps(jwks_document()).encode())),
            ("HS256 without kid", handmade({"alg": "HS256"}, claims(ALICE), public_pem)),
            ("RS256 with an unknown kid",
             jwt.encode(claims(ALICE), RSA_KEY, algorithm="RS256", headers={"kid": "rsa-2"})),
            ("RS256 without kid", jwt.encode(claims(ALICE), RSA_KEY, algorithm="RS256")),
            ("RS256 by another key under our kid",
             jwt.encode(claims(ALICE), OTHER_RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})),
            ("the attacker's key embedded in the header (jwk)",
             jwt.encode(claims(ALICE), OTHER_RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1",
                                                                                  "jwk": attacker_jwk})),
            ("the attacker's key set by URL (jku)",
             jwt.encode(claims(ALICE), OTHER_RSA_KEY, algorithm="RS256",
                        headers={"kid": "rsa-1", "jku": "https://evil.test/jwks.json"})),
            ("ES256 header under the RSA key's kid",
             jwt.encode(claims(ALICE), EC_KEY, algorithm="ES256", headers={"kid": "rsa-1"})),
            ("PS256 with our RSA key", jwt.encode(claims(ALICE), RSA_KEY, algorithm="PS256", headers={"kid": "rsa-1"})),
            ("RS512 with our RSA key", jwt.encode(claims(ALICE), RSA_KEY, algorithm="RS512", headers={"kid": "rsa-1"})),
            ("alg none under our kid", handmade({"alg": "none", "kid": "rsa-1"}, claims(ALICE))),
            ("expired RS256", jwt.encode(claims(ALICE, exp=int(time.time()) - 120), RSA_KEY, algorithm="RS256",
                                         headers={"kid": "rsa-1"})),
        ]
        self.assertGreaterEqual(self.hostile([(name, "POST", "/buy", bearer(token), purchase(ALICE), 401)
                                              for name, token in cases]), 13)


class TestRateLimits(unittest.TestCase):
    """A flood from one client gets 429 with the headers, and everyone else is still served. The
    shop runs with AUTH_MODE=none, so the principal is the client's address, read from
    X-Forwarded-For because the test stands where the ingress would (TRUSTED_PROXIES)."""

    @classmethod
    def setUpClass(cls):
        cls.shop = Shop(env={"RATE_LIMIT_BUY_PER_SECOND": 1, "RATE_LIMIT_BUY_BURST": 3,
                             "RATE_LIMIT_LIST_PER_SECOND": 1, "RATE_LIMIT_LIST_BURST": 2,
                             "TRUSTED_PROXIES": "127.0.0.1/32, ::1"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.shop.stop()

    def test_a_flood_is_refused_and_others_are_served(self):
        port = self.shop.ports["server"]
        flooder = {"X-Forwarded-For": "198.51.100.7, 203.0.113.5"}
        before = self.shop.topic_end_offsets()
        answers = [request(port, "POST", "/buy?dryRun=true", flooder, purchase(ALICE)) for _ in range(20)]
        statuses = [status for status, _, _ in answers]
        self.assertIn(429, statuses)
        # The burst, then at most one more for each second the 20 requests took.
        self.assertLessEqual(statuses.count(200), 3 + 2, statuses)
        status, headers, body = next(answer for answer in answers if answer[0] == 429)
        self.assertGreaterEqual(int(headers["retry-after"]), 1)
        self.assertEqual(headers["ratelimit-policy"], '"buy";q=3;w=3')
        self.assertRegex(headers["ratelimit"], r'^"buy";r=0;t=\d+$')
        self.assertEqual(json.loads(body)["status"], "Error")
        ok = next(answer for answer in answers if answer[0] == 200)
        self.assertIn("ratelimit", ok[1])
        # Another client behind the same proxy, and the purchase list, are unaffected.
        status, _, body = request(port, "POST", "/buy?dryRun=true", {"X-Forwarded-For": "203.0.113.6"},
                                  purchase(BOB))
        self.assertEqual(status, 200, body)
        status, _, body = request(port, "GET", "/getAllUserBuys/bob", flooder)
        self.assertEqual(status, 200, body)
        self.assertEqual(self.shop.topic_end_offsets(), before)
        self.assertGreaterEqual(self.shop.metric_total("cm-server", "http_rate_limited_total"), statuses.count(429))
        # The list has its own bucket: its flood is refused the same way.
        lists = [request(port, "GET", "/getAllUserBuys/bob", {"X-Forwarded-For": "203.0.113.9"})[0]
                 for _ in range(10)]
        self.assertIn(429, lists)


if __name__ == "__main__":
    unittest.main()
