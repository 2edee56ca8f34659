"""Paths that run in the benchmark's own process: the baselines and the ceiling.

- the transformers `QuestionAnsweringPipeline` in PyTorch, one request at a
  time and batched (the baseline a user would otherwise deploy);
- raw ONNX Runtime over the same windows that the tokenizer step cuts, at
  several batch sizes and thread settings (the ceiling of the model step);
- `LocalAnswerer`: tokenizer, ONNX Runtime and decoder in one process;
- a float32 matrix product, for the machine's attainable FLOP/s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from python_backend import protocol
from triton_qa.bench.artifacts import ModelArtifacts
from triton_qa.bench.timing import Budget, Measurement, run_concurrent, run_sequential
from triton_qa.bench.workloads import Request, Workload, window_flops

logger = logging.getLogger(__name__)

PIPELINE_BATCH_SIZE = 8


@dataclass(frozen=True)
class OrtSetting:
    """A raw ONNX Runtime setting: parallel callers, intra-op threads, windows per call."""

    sessions: int
    intra_op_threads: int
    batch_size: int

    def label(self) -> str:
        return (
            f"{self.sessions}x{self.intra_op_threads} threads, batch {self.batch_size}"
        )


def model_config(artifacts: ModelArtifacts) -> dict:
    path = artifacts.checkpoint / "config.json"
    return json.loads(path.read_text(encoding="utf-8"))


def request_cost(config: dict):
    def cost(request: Request) -> tuple[float, int, float]:
        return 1.0, request.num_windows, window_flops(request.lengths, config)

    return cost


def measure_pipeline(
    artifacts: ModelArtifacts,
    workload: Workload,
    budget: Budget,
    batch_size: int = 1,
) -> Measurement:
    """Measure the transformers pipeline, one call per request or per batch."""
    import torch
    from transformers import pipeline

    qa = pipeline(
        "question-answering",
        model=str(artifacts.checkpoint),
        tokenizer=str(artifacts.checkpoint),
        device="cpu",
    )
    config = model_config(artifacts)
    path = "pipeline" if batch_size == 1 else "pipeline-batched"
    measurement = Measurement(
        artifacts.regime,
        path,
        workload.name,
        1,
        settings={"torch_threads": torch.get_num_threads(), "batch_size": batch_size},
    )
    per_request = request_cost(config)
    with torch.inference_mode():
        if batch_size == 1:
            return run_sequential(
                measurement,
                workload.requests,
                lambda r: qa(question=r.question, context=r.context),
                budget,
                per_request,
            )
        chunks = [
            workload.requests[start : start + batch_size]
            for start in range(0, len(workload.requests), batch_size)
        ]

        def call(chunk: list[Request]) -> None:
            qa(
                question=[r.question for r in chunk],
                context=[r.context for r in chunk],
                batch_size=batch_size,
            )

        def cost(chunk: list[Request]) -> tuple[float, int, float]:
            costs = [per_request(r) for r in chunk]
            return tuple(sum(values) for values in zip(*costs))

        return run_sequential(measurement, chunks, call, budget, cost)


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """Return the session options that the served model step uses."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def ort_session(onnx_path: Path, intra_op_threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(onnx_path),
        sess_options=session_options(intra_op_threads),
        providers=["CPUExecutionProvider"],
    )


def window_batches(
    requests: list[Request], batch_size: int, pad_token_id: int
) -> list[dict[str, np.ndarray]]:
    """Cut the windows of `requests`, in order, into padded batches."""
    rows = [
        (ids[mask.astype(bool)])
        for request in requests
        for ids, mask in zip(
            request.windows[protocol.INPUT_IDS],
            request.windows[protocol.ATTENTION_MASK],
        )
    ]
    batches = []
    for start in range(0, len(rows), batch_size):
        chosen = rows[start : start + batch_size]
        width = max(len(row) for row in chosen)
        input_ids = np.full((len(chosen), width), pad_token_id, dtype=np.int64)
        attention_mask = np.zeros((len(chosen), width), dtype=np.int64)
        for index, row in enumerate(chosen):
            input_ids[index, : len(row)] = row
            attention_mask[index, : len(row)] = 1
        batches.append(
            {protocol.INPUT_IDS: input_ids, protocol.ATTENTION_MASK: attention_mask}
        )
    return batches


def measure_onnxruntime(
    artifacts: ModelArtifacts,
    workload: Workload,
    setting: OrtSetting,
    budget: Budget,
    onnx_path: Path | None = None,
    path: str = "onnxruntime",
) -> Measurement:
    """Measure raw ONNX Runtime over the workload's windows with one setting."""
    session = ort_session(onnx_path or artifacts.onnx_path, setting.intra_op_threads)
    batches = window_batches(
        workload.requests, setting.batch_size, artifacts.info.pad_token_id
    )
    config = model_config(artifacts)
    windows_per_request = workload.windows_per_request

    def cost(batch: dict[str, np.ndarray]) -> tuple[float, int, float]:
        rows = batch[protocol.INPUT_IDS].shape[0]
        lengths = batch[protocol.ATTENTION_MASK].sum(axis=1)
        return rows / windows_per_request, rows, window_flops(lengths, config)

    def run(batch: dict[str, np.ndarray]) -> None:
        session.run([protocol.START_LOGITS, protocol.END_LOGITS], batch)

    async def call(batch: dict[str, np.ndarray]) -> bool:
        await asyncio.to_thread(run, batch)
        return True

    measurement = Measurement(
        artifacts.regime,
        path,
        workload.name,
        setting.sessions,
        settings={
            "sessions": setting.sessions,
            "intra_op_threads": setting.intra_op_threads,
            "batch_size": setting.batch_size,
        },
    )
    return asyncio.run(run_concurrent(measurement, batches, call, budget, cost))


def sweep_onnxruntime(
    artifacts: ModelArtifacts,
    workload: Workload,
    settings: list[OrtSetting],
    budget: Budget,
    onnx_path: Path | None = None,
    path: str = "onnxruntime",
) -> list[Measurement]:
    """Measure every setting; the best one is the ceiling of the model step."""
    results = []
    for setting in settings:
        result = measure_onnxruntime(
            artifacts, workload, setting, budget, onnx_path, path
        )
        logger.info(
            "%s %s %s: %.2f windows/s", path, workload.name, setting.label(),
            result.windows / result.seconds,
        )  # fmt: skip
        results.append(result)
    return results


def request_window_time(
    artifacts: ModelArtifacts,
    workload: Workload,
    setting: OrtSetting,
    repeats: int = 1,
) -> Measurement:
    """Time raw ONNX Runtime over all windows of each request, one request at a time.

    This is the model step's share of a request's latency: its windows in
    batches of `setting.batch_size`, spread over `setting.sessions` parallel
    callers, with no tokenizer, decoder or server.
    """
    session = ort_session(artifacts.onnx_path, setting.intra_op_threads)
    config = model_config(artifacts)
    measurement = Measurement(
        artifacts.regime,
        "onnxruntime-per-request",
        workload.name,
        1,
        settings={
            "sessions": setting.sessions,
            "intra_op_threads": setting.intra_op_threads,
            "batch_size": setting.batch_size,
        },
    )
    prepared = [
        window_batches([request], setting.batch_size, artifacts.info.pad_token_id)
        for request in workload.requests
    ]
    pool = ThreadPoolExecutor(setting.sessions)

    def run(batch: dict[str, np.ndarray]) -> None:
        session.run([protocol.START_LOGITS, protocol.END_LOGITS], batch)

    def call(batches: list[dict[str, np.ndarray]]) -> None:
        list(pool.map(run, batches))

    def cost(batches: list[dict[str, np.ndarray]]) -> tuple[float, int, float]:
        lengths = np.concatenate(
            [b[protocol.ATTENTION_MASK].sum(axis=1) for b in batches]
        )
        return 1.0, len(lengths), window_flops(lengths, config)

    budget = Budget(seconds=0.0, min_requests=len(prepared) * repeats, warmup=1)
    with pool:
        return run_sequential(measurement, prepared, call, budget, cost)


def fastest_request_window_time(
    artifacts: ModelArtifacts, workload: Workload, settings: list[OrtSetting]
) -> Measurement:
    """Return the `request_window_time` of the setting with the lowest median."""
    measured = [request_window_time(artifacts, workload, s) for s in settings]
    for measurement in measured:
        logger.info(
            "raw ONNX Runtime per %s request with %s: p50 %.0f ms",
            workload.name,
            measurement.settings,
            measurement.percentile(50),
        )
    return min(measured, key=lambda m: m.percentile(50))


def measure_local(
    artifacts: ModelArtifacts,
    workload: Workload,
    intra_op_threads: int,
    window_batch_size: int,
    budget: Budget,
) -> Measurement:
    """Measure `LocalAnswerer`: tokenizer, ONNX Runtime and decoder in one process."""
    from triton_qa.local import LocalAnswerer

    answerer = LocalAnswerer(
        artifacts.tokenizer_json,
        artifacts.info,
        artifacts.onnx_path,
        window_batch_size=window_batch_size,
        session_options=session_options(intra_op_threads),
    )
    measurement = Measurement(
        artifacts.regime,
        "local",
        workload.name,
        1,
        settings={
            "intra_op_threads": intra_op_threads,
            "window_batch_size": window_batch_size,
        },
    )
    return run_sequential(
        measurement,
        workload.requests,
        lambda r: answerer.answer(r.question, r.context, dict(r.parameters)),
        budget,
        request_cost(model_config(artifacts)),
    )


def matmul_gflops(seconds: float = 1.0) -> dict:
    """Measure float32 matrix-product GFLOP/s, the machine's attainable peak.

    The product has the shape of roberta-base's feed-forward layer on one
    384-token window. ONNX Runtime's MatMul (the library and kernels that the
    model step uses) runs on one thread, then as one single-threaded call per
    CPU in parallel, which is the peak that served FLOP/s are compared with.
    numpy's BLAS is measured too, for reference.
    """
    rng = np.random.default_rng(0)
    left = rng.standard_normal((384, 768), dtype=np.float32)
    right = rng.standard_normal((768, 3072), dtype=np.float32)
    flops = 2.0 * left.shape[0] * left.shape[1] * right.shape[1]
    session = ort.InferenceSession(
        _matmul_graph(right),
        sess_options=session_options(1),
        providers=["CPUExecutionProvider"],
    )
    cpus = os.cpu_count() or 1

    def ort_product() -> None:
        session.run(None, {"left": left})

    return {
        "onnxruntime_1_thread": round(_gflops(ort_product, flops, 1, seconds), 1),
        "gflops_per_s": round(_gflops(ort_product, flops, cpus, seconds), 1),
        "numpy": round(_gflops(lambda: left @ right, flops, 1, seconds), 1),
        "parallel_calls": cpus,
    }


def _matmul_graph(right: np.ndarray) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["left", "right"], ["product"])],
        "matmul",
        [helper.make_tensor_value_info("left", TensorProto.FLOAT, [384, 768])],
        [helper.make_tensor_value_info("product", TensorProto.FLOAT, [384, 3072])],
        [numpy_helper.from_array(right, "right")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def _gflops(product, flops: float, parallel: int, seconds: float) -> float:
    """Return the best GFLOP/s of `parallel` threads calling `product`, of 3 tries."""
    product()
    best = 0.0
    for _ in range(3):
        with ThreadPoolExecutor(parallel) as pool:
            started = time.perf_counter()
            counts = list(
                pool.map(lambda _: _repeat(product, seconds / 3), range(parallel))
            )
            elapsed = time.perf_counter() - started
        best = max(best, sum(counts) * flops / elapsed / 1e9)
    return best


def _repeat(product, seconds: float) -> int:
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        product()
        count += 1
    return count
