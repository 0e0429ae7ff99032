"""Wall-clock timing shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

import time
from collections.abc import Callable

__all__ = ["best_of"]


def best_of(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` wall times of ``run()`` in seconds, after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)
