"""Closed-loop measurement: requests per second and latency percentiles."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Measurement:
    """The outcome of driving one path with one workload at one concurrency."""

    regime: str
    path: str
    workload: str
    concurrency: int
    requests: float = 0.0
    errors: int = 0
    windows: int = 0
    flops: float = 0.0
    seconds: float = 0.0
    # CPU time of the processes that served the requests (user plus system),
    # or None when they are not on this machine.
    cpu_seconds: float | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)
    # Failure message -> count, for the paths that report them.
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cpu_seconds is None or not self.requests:
            return None
        return 1000.0 * self.cpu_seconds / self.requests

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(self.latencies_ms, q))

    def to_dict(self) -> dict[str, Any]:
        return {
            "regime": self.regime,
            "path": self.path,
            "workload": self.workload,
            "concurrency": self.concurrency,
            "requests": round(self.requests, 2),
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 3),
            "p50_ms": round(self.percentile(50), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "windows_per_s": round(self.windows / self.seconds, 3)
            if self.seconds
            else 0.0,
            "cpu_ms_per_request": None
            if self.cpu_ms_per_request is None
            else round(self.cpu_ms_per_request, 2),
            "gflops_per_s": round(self.flops / self.seconds / 1e9, 3)
            if self.seconds
            else 0.0,
            "settings": self.settings,
            **{key: round(value, 3) for key, value in self.extra.items()},
            "failures": self.failures,
        }


@dataclass(frozen=True)
class Budget:
    """When a measurement stops: after `seconds` and at least `min_requests`."""

    seconds: float
    min_requests: int = 1
    warmup: int = 1

    def done(self, started: float, count: int) -> bool:
        return (
            count >= self.min_requests and time.perf_counter() - started >= self.seconds
        )


def run_sequential(
    measurement: Measurement,
    items: list,
    call: Callable[[Any], Any],
    budget: Budget,
    cost: Callable[[Any], tuple[float, int, float]] = lambda item: (1.0, 0, 0.0),
    cpu_clock: Callable[[], float] | None = time.process_time,
) -> Measurement:
    """Call `call(item)` one at a time over `items`, cyclically, until `budget` ends.

    `cost(item)` returns the requests, windows and FLOPs that one item stands
    for. Without `cost`, an item is one request.
    """
    cycle = itertools.cycle(items)
    for _ in range(budget.warmup):
        call(next(cycle))
    cycle = itertools.cycle(items)
    cpu_started = cpu_clock() if cpu_clock else None
    started = time.perf_counter()
    while not budget.done(started, measurement.requests):
        item = next(cycle)
        begin = time.perf_counter()
        call(item)
        measurement.latencies_ms.append((time.perf_counter() - begin) * 1000.0)
        _count(measurement, item, cost)
    measurement.seconds = time.perf_counter() - started
    if cpu_clock:
        measurement.cpu_seconds = cpu_clock() - cpu_started
    return measurement


async def run_concurrent(
    measurement: Measurement,
    items: list,
    call: Callable[[Any], Awaitable[bool]],
    budget: Budget,
    cost: Callable[[Any], tuple[float, int, float]] = lambda item: (1.0, 0, 0.0),
    cpu_clock: Callable[[], float] | None = time.process_time,
) -> Measurement:
    """Keep `measurement.concurrency` calls in flight until `budget` ends.

    `call(item)` returns False for a failed request; failures are counted and
    left out of the latencies. `cpu_clock` returns the CPU seconds used so
    far by whatever serves the calls; None skips the CPU count.
    """
    concurrency = measurement.concurrency
    await asyncio.gather(*(call(items[i % len(items)]) for i in range(concurrency)))
    taken = itertools.count()
    cpu_started = cpu_clock() if cpu_clock else None
    started = time.perf_counter()
    finished = started

    async def worker() -> None:
        nonlocal finished
        while True:
            index = next(taken)
            if budget.done(started, index):
                return
            item = items[index % len(items)]
            begin = time.perf_counter()
            ok = await call(item)
            finished = time.perf_counter()
            if not ok:
                measurement.errors += 1
                continue
            measurement.latencies_ms.append((finished - begin) * 1000.0)
            _count(measurement, item, cost)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measurement.seconds = finished - started
    if cpu_clock:
        measurement.cpu_seconds = cpu_clock() - cpu_started
    return measurement


def _count(measurement: Measurement, item: Any, cost: Callable) -> None:
    requests, windows, flops = cost(item)
    measurement.requests += requests
    measurement.windows += windows
    measurement.flops += flops
