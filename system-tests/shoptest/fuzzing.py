"""schemathesis (an independent fuzzer) against a running service's own OpenAPI document."""

import os
import subprocess
import time

from shoptest import ROOT


def fuzz(shop, service, examples, headers=()):
    """schemathesis against one service's own OpenAPI document: the finished process and a line
    saying how it went. `headers` ("Name: value") go with every request (a bearer token)."""
    url = shop.url(service)
    seed = os.environ.get("FUZZ_SEED") or str(int(time.time()))
    command = [
        os.path.join(os.environ.get("VENV", os.path.join(ROOT, ".venv")), "bin", "schemathesis"), "run",
        f"{url}/openapi.yaml", "--url", url, "--checks", "all",
        # Opaque cursors, byte (not character) limits on names and binary floats for money
        # cannot be written in JSON Schema exactly, so a schema-valid value may still be
        # refused: the Swift tests and the corpus check what must be accepted.
        "--exclude-checks", "positive_data_acceptance",
        "--max-examples", str(examples), "--seed", seed, "--request-timeout", "20",
        "--max-response-time", "10", "--generation-database", "none", "--workers", "2", "--no-color",
    ]
    for header in headers:
        command += ["--header", header]
    # In the shop's throwaway folder: schemathesis keeps state in its working directory.
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=shop.data)
    summary = [line for line in result.stdout.splitlines() if "generated" in line]
    return result, f"schemathesis {service} (seed {seed}): {summary[-1].strip() if summary else '?'}"
