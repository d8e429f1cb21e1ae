"""Run one function on many threads at once, for the concurrency tests and the benchmarks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_threads(target: Callable[..., Any], args_per_thread: list[tuple]) -> list[Any]:
    """Call target once per argument tuple, each on its own thread, all released together;
    answer the results in order, or re-raise the first failure once every thread is done."""
    if not args_per_thread:
        return []
    results: list[Any] = [None] * len(args_per_thread)
    errors: list[BaseException] = []
    start = threading.Barrier(len(args_per_thread))

    def run(index: int, args: tuple) -> None:
        try:
            start.wait()
            results[index] = target(*args)
        except BaseException as exc:  # re-raised by the caller's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(args_per_thread)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
