# Scalable Shop: the two commands the README promises, and their parts.
#   make test   lint, build (warnings are errors), start the test servers, swift test, stop them.

SWIFT        ?= swift
VENV         ?= .venv
SECANTUS_PIN := SecantusDB==0.7.0b3

.PHONY: test lint build venv clean

test: lint build venv
	scripts/with-test-servers.sh $(SWIFT) test --skip-build

lint:
	$(SWIFT) format lint --strict --recursive Package.swift Sources Tests

# Warnings fail the build: every target sets treatAllWarnings(as: .error) in Package.swift.
build:
	$(SWIFT) build --build-tests

# SecantusDB, the MongoDB wire-protocol server the tests use (no MongoDB server is packaged here).
venv: $(VENV)/bin/secantusd-py

$(VENV)/bin/secantusd-py:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(SECANTUS_PIN)'

clean:
	rm -rf .build $(VENV) .run
