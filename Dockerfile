# syntax=docker/dockerfile:1
# Images for both services, from one build stage:
#   docker build --target cm-server -t ghcr.io/scalable-shop/cm-server:0.1.0 .
#   docker build --target cm-api    -t ghcr.io/scalable-shop/cm-api:0.1.0 .
# Without a Docker engine or a registry, `make images` builds the same targets with podman on a
# Debian base made with debootstrap, the Swift stage replaced by binaries built on the host
# (--build-context build=DIR with DIR/out/cm-server and DIR/out/cm-api; system-tests/shoptest/images.py).
# The Swift runtime is linked statically, so the runtime image is Debian slim plus the C libraries
# the binaries load (librdkafka, libmongoc/libbson, libstdc++) and CA certificates for TLS to
# Kafka/MongoDB. Checked with ldd on binaries built the same way (--static-swift-stdlib, Debian 12):
# everything else they load comes with those packages' dependencies. Stripped, cm-api is 74 MB
# (Foundation's ICU data is most of it).

# Pinned by digest (the multi-platform index a tag pointed to), so a rebuild gets the same bases;
# the tags say what they are. Taken without registry access here, from Dependabot's bumps in
# public repositories: swift:6.3.2-bookworm from bufbuild/plugins#2481 (2026-05-20),
# debian:bookworm-slim from quickwit-oss/quickwit#5993 (2025-11-24). Check one with
# `skopeo inspect docker://debian:bookworm-slim@sha256:...` before a release, and move them with
# Renovate or Dependabot (the runtime stage installs its packages from the archive of the day).
# make images builds on a local base instead (--build-arg RUNTIME_IMAGE=...).
ARG SWIFT_IMAGE=swift:6.3.2-bookworm@sha256:de037fec606b26cee2bf7f93dba8eab7a617f067f94cf78669f929e5a0c6146a
ARG RUNTIME_IMAGE=debian:bookworm-slim@sha256:b4aa902587c2e61ce789849cb54c332b0400fe27b1ee33af4669e1f7e7c3e22f

FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends librdkafka-dev libmongoc-dev libbson-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not fetch them again.
COPY Package.swift ./
RUN swift package resolve
COPY Sources ./Sources
COPY Tests ./Tests
# Package.swift declares mongo-bench and http-floor there; the package does not load without them.
COPY bench/MongoBench ./bench/MongoBench
COPY bench/HTTPFloor ./bench/HTTPFloor
RUN swift build -c release --static-swift-stdlib --product cm-server \
 && swift build -c release --static-swift-stdlib --product cm-api \
 && mkdir -p /out \
 && cp "$(swift build -c release --static-swift-stdlib --show-bin-path)/cm-server" \
       "$(swift build -c release --static-swift-stdlib --show-bin-path)/cm-api" /out/ \
 && strip /out/cm-server /out/cm-api

FROM ${RUNTIME_IMAGE} AS runtime
# useradd writes the day of the change into /etc/shadow: from here, not the clock, so two builds
# from the same inputs give the same image (with podman build --timestamp). The logs and caches
# apt, dpkg and ldconfig leave behind would differ too.
ARG SOURCE_DATE_EPOCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends librdkafka1 libmongoc-1.0-0 libbson-1.0-0 libstdc++6 ca-certificates \
 && groupadd --system --gid 10001 shop \
 && useradd --system --uid 10001 --gid shop --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin shop \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /var/log/alternatives.log \
           /var/cache/ldconfig/aux-cache /var/cache/debconf/*-old /var/lib/dpkg/*-old
USER 10001:10001

FROM runtime AS cm-server
COPY --from=build /out/cm-server /usr/local/bin/cm-server
EXPOSE 3001
ENTRYPOINT ["/usr/local/bin/cm-server"]

FROM runtime AS cm-api
COPY --from=build /out/cm-api /usr/local/bin/cm-api
EXPOSE 3000
ENTRYPOINT ["/usr/local/bin/cm-api"]
