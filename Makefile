# Scalable Shop: the two commands the README promises, and their parts.
#   make test   lint, check the Helm charts and k8s/, build (warnings are errors), swift test with a
#               SecantusDB server, the per-request budgets, then every Python suite in
#               system-tests/ (browser, end-to-end, launcher, reliability, monitoring, fleet,
#               images) and the benchmark's smoke run.
#   make run    install what is missing, build in release mode, run the whole shop on localhost.
#   make soak   (not part of make test) ten minutes of load with a random fault every 30 s.
#   make fleet  (not part of make test) replicas behind nginx as the Gateway's HTTPRoute configures
#               it, with Prometheus (system-tests/shoptest/fleet.py; make test-fleet tests it).
#   make images both container images with podman, no Docker engine or registry needed
#               (make test-images builds and runs them on the debug binaries).

SWIFT        ?= swift
VENV         ?= .venv
PYTHON       := $(VENV)/bin/python
BIN_DIR      ?= .build/debug
# The test harness, system-tests/shoptest: every suite imports it, and make run, fleet, soak and
# bench run its programs. Nothing else puts anything on Python's path.
export PYTHONPATH := $(CURDIR)/system-tests
# The one way a Python suite runs: unittest discovering system-tests/<suite>/test_*.py (or the
# pattern given second) against the binaries in BIN_DIR.
SUITE = BIN_DIR=$(BIN_DIR) $(PYTHON) -m unittest discover --start-directory system-tests/$(1) \
	--pattern '$(or $(2),test_*.py)' --verbose
# Instructions per request (bench/per_request.py runs cm-server under callgrind); the Go twin
# (bench/go-twin: Debian's Go 1.19 with confluent-kafka-go and mongo-go-driver, built offline).
BENCH_PACKAGES := valgrind golang-go golang-github-confluentinc-confluent-kafka-go-dev golang-mongodb-mongo-driver-dev
# The fleet's ingress: Debian's nginx with its Lua module (the balancer that follows cm-server's
# endpoints as ingress-nginx's does), and Prometheus.
FLEET_PACKAGES := nginx libnginx-mod-http-lua prometheus
# The images without a Docker engine: Debian's podman and buildah (with runc, images/containers.conf),
# and debootstrap for the base where no registry is reachable.
IMAGE_PACKAGES := podman buildah runc debootstrap

.PHONY: test test-browser test-k8s test-monitoring test-reliability test-long-outage test-launcher \
	test-end-to-end test-fleet test-fleet-full test-images image-suite images scale-test trace-picture run fleet deps release lint build venv clean bench \
	bench-mongo soak

test: lint build test-k8s
	$(PYTHON) -m shoptest.servers $(SWIFT) test --skip-build
	$(PYTHON) bench/per_request.py allocations .build/debug --check bench/allocations-debug.txt \
		--write .build/allocations-debug.line
	$(PYTHON) bench/per_request.py allocations .build/debug --binary cm-api --requests 500 \
		--check bench/allocations-cm-api-debug.txt
	scripts/install-deps.sh $(BENCH_PACKAGES)
	$(PYTHON) bench/per_request.py instructions .build/debug --requests 200 \
		--check bench/instructions-debug.txt --write .build/instructions-debug.line
	$(PYTHON) bench/per_request.py instructions .build/debug --binary cm-api --requests 40 \
		--check bench/instructions-cm-api-debug.txt
	$(MAKE) --no-print-directory test-browser
	$(MAKE) --no-print-directory test-end-to-end
	$(MAKE) --no-print-directory test-launcher
	$(MAKE) --no-print-directory test-reliability
	$(MAKE) --no-print-directory test-monitoring
	$(MAKE) --no-print-directory test-fleet
	$(MAKE) --no-print-directory image-suite
	BENCH_SMOKE=1 BENCH_ALLOCATIONS=.build/allocations-debug.line BENCH_INSTRUCTIONS=.build/instructions-debug.line \
		BIN_DIR=.build/debug bench/bench.sh

# The shop page in headless Chromium against the whole shop, without and with tokens (about 30 s).
test-browser: venv
	$(call SUITE,browser)

# Against the whole shop (debug builds): 117 bad requests, schemathesis on both OpenAPI
# documents, and ten faults under load with an exact accounting (about 3 minutes); with
# AUTH_MODE=jwt, 74 hostile token and access cases, the corpus and schemathesis with a token, a
# request flood (test_auth.py, about 2 minutes, docs/SECURITY.md); and, without a shop, what make
# soak's leak check counts and calls a leak.
test-reliability: venv
	$(call SUITE,reliability)

# The long version of the mongodb-long-outage scenario (make test runs it for 20 s): MongoDB down
# for 3 minutes under load, a second cm-api leaving the group in the middle; cm-api holds one batch,
# its memory flat, and the accounting exact (about 6 minutes with the suite's shop).
test-long-outage: venv
	LONG_OUTAGE_SECONDS=180 $(call SUITE,reliability,test_reliability.py) -k test_mongodb_long_outage

# The whole shop through HTTP only, as the launcher starts it (debug binaries, about 100 s): the
# original README's calls, 2,000 purchases listed once and in order, the receipt from 404 to 200,
# Idempotency-Key retries, cm-api restarted, Kafka down and back; and one purchase followed in
# traces by an independent OTLP receiver (test_traces.py, about 20 s).
test-end-to-end: venv
	$(call SUITE,end-to-end)

# make run stopped as a supervisor stops it (SIGTERM to its process group, again while it stops,
# or a service dying): nothing of the shop may be left running (about 15 s, debug binaries); and
# the harness's dead-letter vocabulary against the services' own.
test-launcher: venv
	$(call SUITE,launcher)

# Ten minutes of mixed load on the release builds with a random fault every 30 s, then the
# accounting line and each service's memory and file descriptors at the start and the end (a
# growth in cm-server's or cm-api's fails it). SOAK_ARGS passes options: --minutes, --rate, --seed,
# --faults (a subset, e.g. without the restarts, to compare one process over the whole soak).
soak: deps venv release
	$(PYTHON) -m shoptest.soak $(SOAK_ARGS)

# The charts in helm/ and the cluster pieces in k8s/, without a cluster: helm lint --strict, renders
# validated against the Kubernetes and KEDA schemas, and what the charts promise; the promtool unit
# tests of every alert (a few seconds).
# The images from the Dockerfile with podman, on the debug build's objects linked again with the
# Swift runtime inside, as the Swift stage links them (shoptest/images.py), run as the charts run
# them (about a minute; the debootstrap base is made once per machine).
test-images: venv build
	$(MAKE) --no-print-directory image-suite

# test-images without its build (make test has built): a second `swift build` in a sub-make
# rebuilt swift-protobuf and the package plugins for nothing (26 s of CI).
image-suite: venv
	scripts/install-deps.sh $(IMAGE_PACKAGES)
	IMAGE_CONFIGURATION=debug $(call SUITE,images)

# Both images (localhost/scalable-shop/cm-server and cm-api, tagged with the charts' appVersion)
# from release binaries, without a Docker engine or a registry (system-tests/shoptest/images.py).
images: venv release
	scripts/install-deps.sh $(IMAGE_PACKAGES)
	$(PYTHON) -m shoptest.images release

test-k8s: venv build
	$(call SUITE,k8s)

# Every alert and dashboard query of the charts, evaluated by a real Prometheus scraping the local
# shop through faults (about a minute).
test-monitoring: venv
	$(call SUITE,monitoring)

# The fleet (system-tests/shoptest/fleet.py, debug binaries, about 2 minutes): two cm-server and two
# cm-api replicas behind nginx configured from the cm-server chart's rendered HTTPRoute, Prometheus
# scraping each: the original URLs, the page under the prefix, the bare-prefix redirect, nothing
# private published, usernames nginx decodes before its rewrite, every replica serving; the
# autoscaler's model against KEDA's and the HPA's rules; the burst scenario, time compressed
# 20-fold; and a rolling restart of cm-server under POST load through nginx (no error at the client).
test-fleet: venv
	scripts/install-deps.sh $(FLEET_PACKAGES)
	$(call SUITE,fleet)

# test-fleet, and the same routes through the chart's Ingress as ingress-nginx served it (about 30 s
# more).
test-fleet-full: venv
	scripts/install-deps.sh $(FLEET_PACKAGES)
	FLEET_FULL=1 $(call SUITE,fleet)

# The scaling scenarios at full length (release binaries, time compressed 10-fold, a 30 s burst):
# one line each, scenario=NAME acknowledged=N stored=N missing=0 duplicated=0 replicas=...
# The burst's picture (lag, replicas, ingest over time) goes to .build/scaling/burst.png.
scale-test: BIN_DIR := .build/release
scale-test: venv release
	scripts/install-deps.sh $(FLEET_PACKAGES)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-plot.txt
	mkdir -p .build/scaling
	SCALE_FULL=1 SCALE_COMPRESSION=10 SCALE_BURST_SECONDS=30 SCALE_SAMPLES=$(CURDIR)/.build/scaling/burst.json \
		$(call SUITE,fleet,test_scale.py)
	$(PYTHON) scripts/plot_scaling.py .build/scaling/burst.json .build/scaling/burst.png

# docs/purchase-trace.png: one purchase's spans as the trace test's OTLP receiver got them (debug
# binaries), drawn as a waterfall (scripts/plot_trace.py, matplotlib from requirements-plot.txt).
trace-picture: venv build
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-plot.txt
	TRACE_DUMP=$(CURDIR)/.build/trace.json $(call SUITE,end-to-end,test_traces.py) -k Traces
	$(PYTHON) scripts/plot_trace.py .build/trace.json docs/purchase-trace.png

run: deps venv release
	$(PYTHON) -m shoptest.launcher

# The shop as the cluster runs it (system-tests/shoptest/fleet.py): FLEET_SERVERS cm-server and
# FLEET_APIS cm-api replicas (2 and 2) behind nginx on INGRESS_PORT (8080) as the chart's Ingress
# configures it, Prometheus on PROMETHEUS_PORT (9090), AUTH_MODE=jwt; it prints the URLs and a token.
fleet: venv release
	scripts/install-deps.sh $(FLEET_PACKAGES)
	$(PYTHON) -m shoptest.fleet

# Debian packages: librdkafka, libmongoc, pkg-config, curl, wrk (installed only when missing).
deps:
	scripts/install-deps.sh

release:
	$(SWIFT) build -c release

# swift-format on the Swift code; pyflakes on the Python (undefined names, unused imports).
lint: venv
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests bench/MongoBench bench/HTTPFloor
	$(PYTHON) -m pyflakes system-tests bench scripts

# Warnings fail the build: every target sets treatAllWarnings(as: .error) in Package.swift.
build:
	$(SWIFT) build --build-tests

# The Python side (requirements.txt): SecantusDB, Selenium, the chart tests' Helm SDK and schema
# validators, the reliability suite's tools. Reinstalled when requirements.txt changes.
venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The shop under load (bench/bench.sh): POST /buy vs dry run vs /healthz, ingest vs a
# librdkafka+libmongoc baseline, the list proxy's own cost, memory, freshness at 1,000/s, and
# cm-server and cm-api side by side with their Go twin.
# make test runs it as a smoke run (BENCH_SMOKE=1, debug builds, small sizes) so it cannot rot.
bench: deps venv release
	scripts/install-deps.sh $(BENCH_PACKAGES)
	bench/bench.sh

# Bulk-insert documents/s through the Mongo binding, batched vs one at a time, on SecantusDB.
bench-mongo: venv
	$(SWIFT) build -c release --product mongo-bench
	$(PYTHON) -m shoptest.servers sh -c 'MONGODB_URI="$$MONGODB_TEST_URI" .build/release/mongo-bench 5000 500,100,1'

clean:
	rm -rf .build $(VENV) .data
