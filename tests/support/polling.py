"""Waiting for what a server, worker or simulator does in its own time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until(
    read: Callable[[], Any],
    done: Callable[[Any], object] = bool,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> Any:
    """Call `read` until `done(value)` holds (by default: until the value is truthy) and
    return that value; fail the test with the last value seen once `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last seen: {value!r}")
        time.sleep(interval)
