"""Waiting for a state, with a deadline: the suites never sleep to synchronise."""

import time


def wait_for(condition, timeout, interval=0.1):
    """Polls `condition` every `interval` seconds until it returns something true or `timeout`
    seconds pass; returns its last value. The suites wait for states this way, never for a time."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
