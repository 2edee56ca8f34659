"""The benchmark's workloads, measurement loops, FLOP counts and targets."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from python_backend import protocol
from python_backend.tokenization import WindowEncoder, read_tokenizer_info
from tests.conftest import CACHE_DIR
from triton_qa.bench import command, report
from triton_qa.bench.inprocess import OrtSetting, window_batches
from triton_qa.bench.runner import RegimeResult
from triton_qa.bench.served import parse_server_timing
from triton_qa.bench.timing import Budget, Measurement, run_concurrent, run_sequential
from triton_qa.bench.workloads import (
    MIX_PERIOD,
    build_workloads,
    load_generator,
    window_flops,
)

generator = load_generator()


@pytest.fixture(scope="module")
def encoder(checkpoints) -> WindowEncoder:
    folder = checkpoints["roberta"]
    return WindowEncoder.from_files(
        folder / "tokenizer.json", read_tokenizer_info(folder)
    )


def test_squad_pairs_have_squad_sized_contexts():
    pairs = generator.squad_pairs(100, seed=3)

    words = [len(pair.context.split()) for pair in pairs]
    assert min(words) >= generator.SQUAD_MIN_WORDS
    assert max(words) <= generator.SQUAD_MAX_WORDS
    assert all(pair.answer in pair.context for pair in pairs)
    assert len({pair.question for pair in pairs}) > 50


def test_squad_pairs_depend_only_on_seed():
    assert generator.squad_pairs(5, seed=7) == generator.squad_pairs(5, seed=7)
    assert generator.squad_pairs(5, seed=7) != generator.squad_pairs(5, seed=8)


def test_long_pairs_reach_word_count():
    pair = generator.long_pairs(1, words=3000, seed=4)[0]

    assert len(pair.context.split()) >= 3000
    answer_at = pair.context.find(pair.answer)
    assert answer_at >= 0


def test_batch_body_lists_pairs():
    pairs = generator.squad_pairs(3)

    body = generator.batch_body(pairs, {"top_k": 2})

    assert [item["context"] for item in body["inputs"]] == [p.context for p in pairs]
    assert body["parameters"] == {"top_k": 2}


def test_invalid_requests_expect_client_errors():
    requests = generator.invalid_requests(generator.squad_pairs(1)[0])

    assert {request.status for request in requests} <= {400, 422}
    assert len({request.name for request in requests}) == len(requests)
    with pytest.raises(ValueError):
        json.loads(requests[0].body)


def test_workloads_cut_windows(encoder):
    workloads = build_workloads(["short", "long", "mix", "full"], encoder, 2000)

    assert all(r.num_windows == 1 for r in workloads["short"].requests)
    assert all(r.num_windows > 5 for r in workloads["long"].requests)
    mix = workloads["mix"].requests
    long_positions = [i for i, r in enumerate(mix) if r.num_windows > 1]
    assert long_positions == list(range(MIX_PERIOD - 1, len(mix), MIX_PERIOD))


def test_full_workload_fills_one_window(encoder):
    full = build_workloads(["full"], encoder, 2000)["full"]
    max_seq_len = min(encoder.info.model_max_length, protocol.DEFAULT_MAX_SEQ_LEN)

    for request in full.requests:
        assert request.num_windows == 1
        assert max_seq_len - 2 <= int(request.lengths[0]) <= max_seq_len


def test_short_windows_shorter_than_full(encoder):
    workloads = build_workloads(["short", "full"], encoder, 2000)

    ratio = workloads["full"].tokens_per_window / workloads["short"].tokens_per_window
    assert ratio > 1.5


def test_window_flops_match_model_weights(checkpoints):
    import torch
    from transformers import AutoModelForQuestionAnswering

    folder = checkpoints["roberta"]
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    # Multiply-adds per token of every Linear layer: the encoder's and the head's.
    weights = sum(
        module.weight.numel()
        for module in model.modules()
        if isinstance(module, torch.nn.Linear)
    )
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]

    one_token = window_flops(np.array([1]), config)
    two_windows = window_flops(np.array([100, 100]), config)

    assert one_token == pytest.approx(2 * weights + 4 * layers * hidden)
    assert two_windows == pytest.approx(2 * window_flops(np.array([100]), config))


def test_window_flops_grow_faster_than_length():
    config = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}

    short = window_flops(np.array([192]), config)
    full = window_flops(np.array([384]), config)

    assert full > 2 * short
    # About 170 MFLOP per token for roberta-base's 85 M encoder weights.
    assert 1.6e8 < short / 192 < 1.9e8


def test_window_batches_pad_to_longest():
    requests = build_requests([[5, 6, 7], [5, 6], [5]])

    batches = window_batches(requests, batch_size=2, pad_token_id=1)

    assert [b[protocol.INPUT_IDS].shape for b in batches] == [(2, 3), (1, 1)]
    assert batches[0][protocol.INPUT_IDS][1].tolist() == [5, 6, 1]
    assert batches[0][protocol.ATTENTION_MASK][1].tolist() == [1, 1, 0]


def build_requests(rows: list[list[int]]):
    from triton_qa.bench.workloads import Request

    requests = []
    for row in rows:
        ids = np.array([row], dtype=np.int64)
        mask = np.ones_like(ids)
        windows = {protocol.INPUT_IDS: ids, protocol.ATTENTION_MASK: mask}
        requests.append(Request("q", "c", {}, windows))
    return requests


def test_server_timing_parsed():
    header = "parse;dur=0.4, triton;dur=12.5, total;dur=13.1, cache;desc=miss"

    assert parse_server_timing(header) == {"parse": 0.4, "triton": 12.5, "total": 13.1}
    assert parse_server_timing("") == {}
    assert parse_server_timing("total;dur=abc") == {}


def test_sequential_run_respects_budget():
    calls = []
    measurement = Measurement("tiny", "test", "short", 1)

    run_sequential(
        measurement, [1, 2, 3], calls.append, Budget(0.0, min_requests=7, warmup=2)
    )

    assert measurement.requests == 7
    assert calls == [1, 2, 1, 2, 3, 1, 2, 3, 1]
    assert len(measurement.latencies_ms) == 7


def test_concurrent_run_counts_throughput_and_errors():
    async def call(item: int) -> bool:
        await asyncio.sleep(0.01)
        return item != 0

    measurement = Measurement("tiny", "test", "short", 4)
    started = time.perf_counter()
    asyncio.run(run_concurrent(measurement, [0, 1, 2, 3], call, Budget(0.3)))

    assert time.perf_counter() - started < 2.0
    assert measurement.errors > 0
    assert measurement.requests == pytest.approx(3 * measurement.errors, abs=4)
    # Four calls of 10 ms in flight: at most 400 per second, errors included.
    assert 100 < measurement.rps + measurement.errors / measurement.seconds <= 420
    assert measurement.percentile(50) >= 10.0


def test_measurement_percentiles():
    measurement = Measurement("tiny", "test", "short", 1, requests=4, seconds=2.0)
    measurement.latencies_ms = [1.0, 2.0, 3.0, 100.0]

    assert measurement.rps == 2.0
    assert measurement.percentile(50) == 2.5
    assert measurement.to_dict()["p99_ms"] > 90


def measured(path, workload, concurrency, rps, p50):
    measurement = Measurement("base", path, workload, concurrency)
    measurement.requests = rps * 10
    measurement.seconds = 10.0
    measurement.latencies_ms = [p50] * 3
    return measurement


def test_base_targets_from_measurements():
    result = RegimeResult("base")
    result.measurements = [
        measured("onnxruntime", "short", 2, 10.0, 200.0),
        measured("pipeline", "short", 1, 5.0, 200.0),
        measured("gateway", "short", 4, 9.5, 400.0),
        measured("gateway", "short", 16, 8.0, 2000.0),
        measured("gateway", "full", 4, 6.0, 700.0),
        measured("gateway", "long", 1, 0.2, 5000.0),
        measured("onnxruntime-per-request", "long", 1, 0.25, 4000.0),
    ]

    targets = {t.name: t for t in report.evaluate_targets([result], [1, 4, 16])}

    vs_ort = targets["served throughput vs raw ONNX Runtime (short)"]
    assert vs_ort.value == pytest.approx(0.95)
    assert vs_ort.met is True
    assert targets["short requests vs full 384-token windows"].met is False
    latency = targets["2,000-word context latency vs raw ONNX Runtime on its windows"]
    assert latency.value == pytest.approx(1.25)
    assert latency.met is False
    assert targets["int8 throughput vs float32"].met is None


def test_tiny_targets_from_measurements():
    result = RegimeResult("tiny")
    result.measurements = [
        measured("gateway", "short", 1, 150.0, 6.0),
        measured("triton-grpc", "short", 1, 180.0, 5.5),
        measured("gateway", "short", 16, 300.0, 50.0),
        measured("triton-grpc", "short", 16, 600.0, 25.0),
    ]

    targets = report.evaluate_targets([result], [1, 16])

    assert [t.met for t in targets] == [True, False]
    assert targets[0].value == pytest.approx(0.5)
    assert "MISSED" in report.format_report([result], targets, {"matmul": {}})


def test_quick_plan():
    args = command.build_parser().parse_args(["--quick"])

    plan = command.make_plan(args)

    assert plan.regimes == ["tiny"]
    assert plan.workloads == ["short"]
    assert plan.durations == {"tiny": 3.0}
    assert plan.ort_settings == [OrtSetting(1, 2, 4)]


@pytest.mark.parametrize(
    "argv",
    [
        ["--regimes", "huge"],
        ["--workloads", "short,poems"],
        ["--ort-threads", "two"],
        ["--url", "http://127.0.0.1:1"],
    ],
)
def test_invalid_plan_rejected(argv):
    args = command.build_parser().parse_args(argv)

    with pytest.raises(SystemExit):
        command.make_plan(args)


@pytest.mark.slow
def test_bench_command_writes_json(tmp_path):
    output = tmp_path / "bench.json"
    argv = [
        "--regimes",
        "tiny",
        "--workloads",
        "short,long",
        "--sections",
        "onnxruntime,local",
        "--duration",
        "0.3",
        "--ort-threads",
        "1x1",
        "--ort-batch-sizes",
        "1,2",
        "--cache-dir",
        str(CACHE_DIR / "bench"),
        "--json",
        str(output),
    ]

    assert command.main(argv) == 0

    results = json.loads(output.read_text(encoding="utf-8"))
    regime = results["regimes"][0]
    paths = {(m["path"], m["workload"]) for m in regime["measurements"]}
    assert ("onnxruntime", "short") in paths
    assert ("onnxruntime-per-request", "long") in paths
    assert ("local", "long") in paths
    assert all(m["rps"] > 0 for m in regime["measurements"])
    assert len(regime["best_onnxruntime"]["sweep"]) == 2
    assert results["machine"]["matmul"]["gflops_per_s"] > 0
