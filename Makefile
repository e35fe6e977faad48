# Scalable Shop: the two commands the README promises, and their parts.
#   make test   lint, check the Helm charts and k8s/, build (warnings are errors), start the test
#               servers, swift test, stop them, then the browser test of the shop page, the
#               end-to-end tests, make run's stop under signals, the
#               reliability suite (bad input, fuzzing, faults under load) and the benchmark's smoke run.
#   make run    install what is missing, build in release mode, run the whole shop on localhost.
#   make soak   (not part of make test) ten minutes of load with a random fault every 30 s.
#   make fleet  (not part of make test) replicas behind nginx as the Ingress configures it, with
#               Prometheus (scripts/fleet.py; make test-fleet tests it).

SWIFT        ?= swift
VENV         ?= .venv
SECANTUS_PIN := SecantusDB==0.7.0b3
SELENIUM_PIN := selenium==4.51.0
# Helm v4's Go SDK (no helm binary needed), Kubernetes' and KEDA's schemas for the chart tests.
K8S_PINS     := helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3
# Instructions per request (bench/per_request.py runs cm-server under callgrind).
BENCH_PACKAGES := valgrind
# make scale-test's picture only.
PLOT_PIN     := matplotlib==3.11.2
# The fleet's ingress: Debian's nginx with its Lua module (the balancer that follows cm-server's
# endpoints as ingress-nginx's does), and Prometheus.
FLEET_PACKAGES := nginx libnginx-mod-http-lua prometheus
# The reliability suite: OpenAPI fuzzing, and a Kafka client (its wheel carries librdkafka) to
# write poison messages and read the dead-letter topic.
RELIABILITY_PINS := schemathesis==4.32.5 confluent-kafka==2.16.1 PyJWT==2.15.1 cryptography==50.0.2

.PHONY: test-long-outage test test-k8s test-monitoring test-reliability test-launcher test-end-to-end test-fleet scale-test run fleet deps release lint build venv clean bench bench-mongo soak

test: lint test-k8s build venv
	scripts/with-test-servers.sh $(SWIFT) test --skip-build
	$(VENV)/bin/python bench/per_request.py allocations .build/debug --check bench/allocations-debug.txt
	scripts/install-deps.sh $(BENCH_PACKAGES)
	$(VENV)/bin/python bench/per_request.py instructions .build/debug --requests 200 \
		--check bench/instructions-debug.txt
	$(VENV)/bin/python system-tests/browser/test_shop_page.py
	$(MAKE) --no-print-directory test-end-to-end
	$(MAKE) --no-print-directory test-launcher
	$(MAKE) --no-print-directory test-reliability
	$(MAKE) --no-print-directory test-monitoring
	$(MAKE) --no-print-directory test-fleet
	BENCH_SMOKE=1 BIN_DIR=.build/debug bench/bench.sh

# Against the whole shop (debug builds): 117 bad requests, schemathesis on both OpenAPI
# documents, and ten faults under load with an exact accounting (about 4 minutes); with
# AUTH_MODE=jwt, 74 hostile token and access cases, the corpus and schemathesis with a token, a
# request flood (test_auth.py, about 2 minutes, docs/SECURITY.md); and, without a shop, what make soak's leak check counts and calls a leak.
test-reliability: venv
	BIN_DIR=.build/debug $(VENV)/bin/python -m unittest discover --start-directory system-tests/reliability \
		--pattern 'test_*.py' --verbose

# The long version of the mongodb-long-outage scenario (make test runs it for 20 s): MongoDB down
# for 3 minutes under load, a second cm-api leaving the group in the middle; cm-api holds one batch,
# its memory flat, and the accounting exact (about 6 minutes with the suite's shop).
test-long-outage: venv
	cd system-tests/reliability && LONG_OUTAGE_SECONDS=180 BIN_DIR=../../.build/debug ../../$(VENV)/bin/python \
		-m unittest --verbose test_reliability.Test3Faults.test_mongodb_long_outage

# The whole shop through HTTP only, as the launcher starts it (debug binaries, about 40 s): the
# original README's calls, 2,000 purchases listed once and in order, the receipt from 404 to 200,
# Idempotency-Key retries, cm-api restarted, Kafka down and back.
test-end-to-end: venv
	BIN_DIR=.build/debug $(VENV)/bin/python -m unittest discover --start-directory system-tests/end-to-end \
		--pattern 'test_*.py' --verbose

# make run stopped as a supervisor stops it (SIGTERM to its process group, again while it stops,
# or a service dying): nothing of the shop may be left running (about 15 s, debug binaries).
test-launcher: venv
	$(VENV)/bin/python -m unittest discover --start-directory system-tests/launcher --pattern 'test_*.py'

# Ten minutes of mixed load on the release builds with a random fault every 30 s, then the
# accounting line and each service's memory and file descriptors at the start and the end (a
# growth in cm-server's or cm-api's fails it). SOAK_ARGS passes options: --minutes, --rate, --seed,
# --faults (a subset, e.g. without the restarts, to compare one process over the whole soak).
soak: deps venv release
	$(VENV)/bin/python system-tests/reliability/soak.py $(SOAK_ARGS)

# The charts in helm/ and the cluster pieces in k8s/, without a cluster: helm lint --strict, renders
# validated against the Kubernetes and KEDA schemas, and what the charts promise (a few seconds).
# Every alert and dashboard query of the charts, evaluated by a real Prometheus scraping the local
# shop through faults (about a minute); the promtool unit tests are part of test-k8s.
test-monitoring: venv
	BIN_DIR=.build/debug $(VENV)/bin/python -m unittest discover --start-directory system-tests/monitoring \
		--pattern 'test_*.py' --verbose

# The fleet (scripts/fleet.py, debug binaries, about 2 minutes): two cm-server and two cm-api
# replicas behind nginx configured from the cm-server chart's rendered Ingress, Prometheus scraping
# each: the original URLs, the page under the prefix, the bare-prefix redirect, nothing private
# published, usernames nginx decodes before its rewrite, every replica serving; the autoscaler's
# model against KEDA's and the HPA's rules; the burst scenario, time compressed 20-fold; and a
# rolling restart of cm-server under POST load through nginx (no error at the client).
test-fleet: venv
	scripts/install-deps.sh $(FLEET_PACKAGES)
	BIN_DIR=.build/debug $(VENV)/bin/python -m unittest discover --start-directory system-tests/fleet \
		--pattern 'test_*.py' --verbose

# The scaling scenarios at full length (release binaries, time compressed 10-fold, a 30 s burst):
# one line each, scenario=NAME acknowledged=N stored=N missing=0 duplicated=0 replicas=...
# The burst's picture (lag, replicas, ingest over time) goes to .build/scaling/burst.png.
scale-test: venv release
	scripts/install-deps.sh $(FLEET_PACKAGES)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(PLOT_PIN)'
	mkdir -p .build/scaling
	cd system-tests/fleet && SCALE_FULL=1 SCALE_COMPRESSION=10 SCALE_BURST_SECONDS=30 BIN_DIR=../../.build/release \
		SCALE_SAMPLES=../../.build/scaling/burst.json ../../$(VENV)/bin/python -m unittest test_scale
	$(VENV)/bin/python scripts/plot_scaling.py .build/scaling/burst.json .build/scaling/burst.png

test-k8s: venv
	$(VENV)/bin/python -m unittest discover --start-directory system-tests/k8s --pattern 'test_*.py'

run: deps venv release
	$(VENV)/bin/python scripts/shop.py

# The shop as the cluster runs it (scripts/fleet.py): FLEET_SERVERS cm-server and FLEET_APIS cm-api
# replicas (2 and 2) behind nginx on INGRESS_PORT (8080) as the chart's Ingress configures it,
# Prometheus on PROMETHEUS_PORT (9090), AUTH_MODE=jwt; it prints the URLs and a token.
fleet: venv release
	scripts/install-deps.sh $(FLEET_PACKAGES)
	$(VENV)/bin/python scripts/fleet.py

# Debian packages: librdkafka, libmongoc, pkg-config, curl, wrk (installed only when missing).
deps:
	scripts/install-deps.sh

release:
	$(SWIFT) build -c release

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests bench/MongoBench bench/HTTPFloor

# Warnings fail the build: every target sets treatAllWarnings(as: .error) in Package.swift.
build:
	$(SWIFT) build --build-tests

# SecantusDB, the MongoDB wire-protocol server the tests use (no MongoDB server is packaged here),
# Selenium for the browser test of the shop page (Chromium itself comes from Debian), the
# chart tests' Helm SDK and schema validators, and the reliability suite's tools.
venv: $(VENV)/.installed-5

$(VENV)/.installed-5:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(SECANTUS_PIN)' '$(SELENIUM_PIN)' $(K8S_PINS) \
		$(RELIABILITY_PINS)
	touch $@

# The shop under load (bench/bench.sh): POST /buy vs dry run vs /healthz, ingest vs a
# librdkafka+libmongoc baseline, the list proxy's own cost, memory, freshness at 1,000/s.
# make test runs it as a smoke run (BENCH_SMOKE=1, debug builds, small sizes) so it cannot rot.
bench: deps venv release
	scripts/install-deps.sh $(BENCH_PACKAGES)
	bench/bench.sh

# Bulk-insert documents/s through the Mongo binding, batched vs one at a time, on SecantusDB.
bench-mongo: venv
	$(SWIFT) build -c release --product mongo-bench
	scripts/with-test-servers.sh sh -c 'MONGODB_URI="$$MONGODB_TEST_URI" .build/release/mongo-bench 5000 500,100,1'

clean:
	rm -rf .build $(VENV) .data
