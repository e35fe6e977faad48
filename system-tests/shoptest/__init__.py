"""The shop's test harness: one package that every suite, `make run`, `make fleet`, `make soak` and
`make bench` import (the Makefile puts system-tests/ on PYTHONPATH; nothing else touches sys.path).

    launcher     the whole shop as processes: `make run` (python -m shoptest.launcher); Shop for suites
    fleet        replicas behind nginx configured from the chart's HTTPRoute (or Ingress), with Prometheus
                 (make fleet)
    images       the container images with podman: debootstrap base, build, run as the charts do
    servers      SecantusDB, started one way for everyone; `python -m shoptest.servers CMD` runs CMD
                 with one (make test's swift test)
    net          free ports, one GET, a process's TCP connections
    waiting      wait_for: a condition polled until a deadline, never a sleep
    kafka        the topic and the dead-letter topic's vocabulary, offsets, reading what was added
    charts       the Helm charts rendered (helm-python-sdk), their objects, rules and dashboards
    accounting   purchase load with an exact accounting of what was acknowledged and stored
    bad_input    the corpus of bad requests and what each must get
    faults       the fault scenarios under load (make test-reliability, make soak)
    fuzzing      schemathesis against a service's own OpenAPI document
    soak         make soak: load and random faults for minutes, then the accounting and leaks
    autoscaler   KEDA's and the HPA's decisions, as a model the fleet is scaled by
    scaling      scaling scenarios on the fleet under that model
"""

import os

# The repository's root.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The purchases topic the launcher gives both services (KAFKA_TOPIC).
TOPIC = "scalable-shop-purchases"
