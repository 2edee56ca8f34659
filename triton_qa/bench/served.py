"""Paths through servers: the gateway over HTTP and the ensemble over Triton gRPC.

Both clients do the same work per request as a user of each would: the
gateway client posts the JSON body and reads the answer; the Triton client
sends the ensemble's first chunk of windows, then the remaining chunks
concurrently, and merges them, as the gateway does. The difference between
the two is the gateway's cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import numpy as np
import psutil

from python_backend import protocol
from python_backend.decoding import merge_chunk_results
from triton_qa.bench.artifacts import ModelArtifacts
from triton_qa.bench.timing import Budget, Measurement, run_concurrent
from triton_qa.bench.workloads import Request, Workload, load_generator

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Endpoint:
    """The address of a served model: its gateway URL and, optionally, Triton's gRPC."""

    url: str
    model_id: str
    grpc_url: str | None = None
    token: str | None = None
    # Server processes on this machine, whose CPU time the bench counts.
    pids: tuple[int, ...] = ()

    def cpu_clock(self) -> Callable[[], float] | None:
        """Return a clock of the CPU seconds of the server processes and children."""
        if not self.pids:
            return None
        roots = [psutil.Process(pid) for pid in self.pids]

        def clock() -> float:
            total = 0.0
            for root in roots:
                for process in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = process.cpu_times()
                        total += times.user + times.system
            return total

        return clock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def started_stack(artifacts: ModelArtifacts, log_dir: Path) -> Iterator[Endpoint]:
    """Run tritonserver and the gateway on free ports for `artifacts`."""
    from triton_qa.serve import ServeOptions, Stack
    from triton_qa.tritonserver import TritonPorts

    ports = TritonPorts(free_port(), free_port(), free_port())
    log_dir.mkdir(parents=True, exist_ok=True)
    options = ServeOptions(
        model_repository=artifacts.repository.resolve(),
        port=free_port(),
        triton_ports=ports,
        triton_log=log_dir / f"triton-{artifacts.repository.name}.log",
        gateway_args=(
            "--request-timeout-s",
            str(REQUEST_TIMEOUT_S),
            "--log-level",
            "WARNING",
        ),
    )
    stack = Stack(options)
    logger.info("starting the stack for %s", artifacts.repository.name)
    stack.start()
    try:
        yield Endpoint(
            stack.url,
            artifacts.model_id,
            f"127.0.0.1:{ports.grpc}",
            pids=(stack.triton.process.pid, stack.gateway.pid),
        )
    finally:
        stack.stop()


def parse_server_timing(header: str) -> dict[str, float]:
    """Return the durations of a Server-Timing header, in milliseconds.

    The Locust file parses the gateway's header the same way, so both use
    the function in `loadtests/workload.py`.
    """
    return load_generator().parse_server_timing(header)


async def measure_gateway(
    endpoint: Endpoint,
    regime: str,
    workload: Workload,
    concurrency: int,
    budget: Budget,
    cost,
    path: str = "gateway",
) -> Measurement:
    """Post the workload's requests to the gateway with `concurrency` in flight."""
    url = f"{endpoint.url}/models/{endpoint.model_id}"
    headers = {"Content-Type": "application/json"}
    if endpoint.token:
        headers["Authorization"] = f"Bearer {endpoint.token}"
    stages: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def call(request: Request) -> bool:
            try:
                async with session.post(
                    url, data=request.body, headers=headers
                ) as reply:
                    body = await reply.read()
                    if reply.status != 200:
                        failures[f"HTTP {reply.status}: {body[:200]!r}"] += 1
                        return False
                    timing = reply.headers.get("Server-Timing", "")
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                failures[f"{type(error).__name__}: {error}"] += 1
                return False
            for stage, milliseconds in parse_server_timing(timing).items():
                stages[stage].append(milliseconds)
            return True

        measurement = Measurement(regime, path, workload.name, concurrency)
        await run_concurrent(
            measurement, workload.requests, call, budget, cost, endpoint.cpu_clock()
        )
    _log_failures(path, failures)
    measurement.failures = dict(failures)
    for stage, values in sorted(stages.items()):
        measurement.extra[f"server_{stage}_p50_ms"] = float(np.median(values))
    return measurement


async def measure_triton(
    endpoint: Endpoint,
    regime: str,
    workload: Workload,
    concurrency: int,
    budget: Budget,
    cost,
) -> Measurement:
    """Call the ensemble over gRPC as the gateway does, without the gateway."""
    from tritonclient.grpc.aio import InferenceServerClient

    ensemble = protocol.ensemble_name(endpoint.model_id)
    failures: dict[str, int] = defaultdict(int)
    client = InferenceServerClient(endpoint.grpc_url)
    try:
        config = await client.get_model_config(ensemble, as_json=True)
        parameters = config["config"]["parameters"]
        chunk = int(parameters[protocol.CONFIG_WINDOW_BATCH_SIZE]["string_value"])
        caller = _EnsembleCaller(client, ensemble, chunk, failures)
        measurement = Measurement(regime, "triton-grpc", workload.name, concurrency)
        # The gateway is idle meanwhile, so this counts Triton's CPU time.
        await run_concurrent(
            measurement,
            workload.requests,
            caller.answer,
            budget,
            cost,
            endpoint.cpu_clock(),
        )
    finally:
        await client.close()
    _log_failures("triton-grpc", failures)
    measurement.failures = dict(failures)
    return measurement


class _EnsembleCaller:
    def __init__(self, client, ensemble: str, chunk: int, failures: dict) -> None:
        self.client = client
        self.ensemble = ensemble
        self.chunk = chunk
        self.failures = failures

    async def answer(self, request: Request) -> bool:
        from tritonclient.utils import InferenceServerException

        try:
            first = await self._infer(request, 0)
            if "answers" in first:
                return True
            covered = first["window_start"] + first["window_count"]
            starts = range(covered, first["num_windows"], self.chunk)
            rest = await asyncio.gather(*(self._infer(request, s) for s in starts))
        except InferenceServerException as error:
            self.failures[str(error)[:200]] += 1
            return False
        top_k = request.parameters.get("top_k", protocol.DEFAULTS["top_k"])
        impossible = request.parameters.get(
            "handle_impossible_answer", protocol.DEFAULTS["handle_impossible_answer"]
        )
        merge_chunk_results([first, *rest], top_k, impossible)
        return True

    async def _infer(self, request: Request, window_start: int) -> dict:
        from tritonclient.grpc import InferInput, InferRequestedOutput

        inputs = []
        for name, text in (
            (protocol.QUESTION, request.question),
            (protocol.CONTEXT, request.context),
        ):
            tensor = InferInput(name, [1], "BYTES")
            tensor.set_data_from_numpy(np.array([text.encode("utf-8")], dtype=object))
            inputs.append(tensor)
        result = await self.client.infer(
            self.ensemble,
            inputs,
            outputs=[InferRequestedOutput(protocol.RESULT)],
            parameters={
                **request.parameters,
                "window_start": window_start,
                "window_limit": self.chunk,
            },
            client_timeout=REQUEST_TIMEOUT_S,
        )
        return json.loads(result.as_numpy(protocol.RESULT).reshape(-1)[0])


def _log_failures(path: str, failures: dict[str, int]) -> None:
    for message, count in failures.items():
        logger.warning("%s: %d requests failed: %s", path, count, message)
