"""Inference through a fake Triton: response shapes, batches, window chunks."""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

import pytest

from gateway import triton
from python_backend import decoding
from tests.unit.gateway_fakes import (  # noqa: F401
    FakeModel,
    FakeTriton,
    anyio_backend,
    grpc_error,
    qa_body,
    running_gateway,
    windowed_handler,
)

pytestmark = pytest.mark.anyio

CONTEXT = "Alice Brenner ran the old harbour library until 1934."


@pytest.mark.parametrize("parameters", [{}, {"top_k": 1}])
async def test_top_k_one_returns_object(parameters):
    async with running_gateway() as (client, _):
        response = await client.post("/", json=qa_body(context=CONTEXT, **parameters))
    assert response.status_code == 200
    assert response.json() == {"answer": "Alice", "score": 0.5, "start": 0, "end": 5}


@pytest.mark.parametrize("top_k", [2, 3])
async def test_top_k_above_one_returns_list(top_k):
    async with running_gateway() as (client, _):
        response = await client.post("/", json=qa_body(context=CONTEXT, top_k=top_k))
    answers = response.json()
    assert isinstance(answers, list)
    assert len(answers) == top_k
    assert [a["answer"] for a in answers] == CONTEXT.split()[:top_k]


async def test_top_k_list_with_one_answer():
    async with running_gateway() as (client, _):
        response = await client.post("/", json=qa_body(context="Alice", top_k=5))
    assert response.json() == [{"answer": "Alice", "score": 0.5, "start": 0, "end": 5}]


async def test_batch_of_pairs_returns_results_in_order():
    inputs = [
        {"question": "A?", "context": "first pair"},
        {"question": "B?", "context": "second pair"},
    ]
    async with running_gateway() as (client, _):
        single = await client.post("/", json={"inputs": inputs})
        listed = await client.post(
            "/", json={"inputs": inputs, "parameters": {"top_k": 2}}
        )
    assert [r["answer"] for r in single.json()] == ["first", "second"]
    assert [[a["answer"] for a in r] for r in listed.json()] == [
        ["first", "pair"],
        ["second", "pair"],
    ]


async def test_columns_return_list_of_results():
    body = {
        "inputs": {"question": ["A?", "B?"], "context": ["one two", "three four"]},
        "parameters": {"top_k": 2},
    }
    async with running_gateway() as (client, _):
        response = await client.post("/", json=body)
    assert [[a["answer"] for a in r] for r in response.json()] == [
        ["one", "two"],
        ["three", "four"],
    ]


async def test_batch_of_one_is_still_a_list():
    async with running_gateway() as (client, _):
        response = await client.post("/", json={"inputs": [qa_body()["inputs"]]})
    assert response.json() == [{"answer": "Alice", "score": 0.5, "start": 0, "end": 5}]


async def test_sent_parameters_reach_triton():
    fake = FakeTriton()
    parameters = {
        "top_k": 2,
        "doc_stride": 0,
        "max_answer_len": 7,
        "max_seq_len": 64,
        "max_question_len": 16,
        "handle_impossible_answer": False,
        "align_to_words": False,
    }
    async with running_gateway(fake) as (client, _):
        await client.post("/", json=qa_body(context=CONTEXT, **parameters))
    (call,) = fake.client_calls
    assert call.parameters == {**parameters, "window_start": 0, "window_limit": 4}
    assert call.question == "Who ran it?"
    assert call.context == CONTEXT
    assert call.model_name == "acme--tiny-qa"


async def test_unset_parameters_are_not_sent():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, _):
        await client.post("/", json=qa_body(context=CONTEXT))
    (call,) = fake.client_calls
    assert call.parameters == {"window_start": 0, "window_limit": 4}


async def test_unicode_text_reaches_triton_unchanged():
    fake = FakeTriton()
    context = "Party 🎉🎉 at the 👨‍👩‍👧 house: Zoë Ferrand hosts.\u0000"
    async with running_gateway(fake) as (client, _):
        response = await client.post(
            "/", json=qa_body(question="Who? 中国", context=context)
        )
    assert response.status_code == 200
    (call,) = fake.client_calls
    assert call.context == context
    assert call.question == "Who? 中国"


async def test_request_id_reaches_triton():
    fake = FakeTriton()
    async with running_gateway(fake) as (client, _):
        await client.post("/", json=qa_body(), headers={"X-Request-Id": "req-42"})
    assert [c.request_id for c in fake.client_calls] == ["req-42@0"]


async def test_long_context_runs_remaining_chunks():
    context = " ".join(f"w{i}" for i in range(20))
    fake = FakeTriton(handler=windowed_handler(num_windows=10))
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=qa_body(context=context, top_k=3))
    starts = sorted(c.parameters["window_start"] for c in fake.client_calls)
    assert starts == [0, 4, 8]
    assert {c.parameters["window_limit"] for c in fake.client_calls} == {4}
    assert [a["answer"] for a in response.json()] == ["w9", "w8", "w7"]


class RecordingMerger(decoding.ChunkMerger):
    """A ChunkMerger that records the chunks it merges and how it finalizes."""

    instances: ClassVar[list[RecordingMerger]] = []

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[int] = []
        self.finalized: tuple[int, bool] | None = None
        RecordingMerger.instances.append(self)

    def add(self, result: dict) -> None:
        self.starts.append(result["window_start"])
        super().add(result)

    def answers(self, top_k: int, handle_impossible_answer: bool) -> list[dict]:
        self.finalized = (top_k, handle_impossible_answer)
        return super().answers(top_k, handle_impossible_answer)


async def test_chunks_are_merged_with_decoding(monkeypatch):
    RecordingMerger.instances = []
    monkeypatch.setattr(triton, "ChunkMerger", RecordingMerger)
    text = " ".join(f"w{i}" for i in range(20))
    fake = FakeTriton(handler=windowed_handler(num_windows=9))
    body = qa_body(context=text, top_k=2, handle_impossible_answer=True)
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=body)
    merged = [(m.starts, m.finalized) for m in RecordingMerger.instances]
    assert ([0, 4, 8], (2, True)) in merged
    assert len(response.json()) == 2


async def test_merge_uses_defaults_when_unset(monkeypatch):
    RecordingMerger.instances = []
    monkeypatch.setattr(triton, "ChunkMerger", RecordingMerger)
    fake = FakeTriton(handler=windowed_handler(num_windows=5))
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=qa_body(context="a b c d e"))
    assert (1, False) in [m.finalized for m in RecordingMerger.instances]
    assert isinstance(response.json(), dict)


async def test_chunk_calls_are_bounded_and_in_order():
    running = 0
    peak = 0

    async def call(index: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01 * (index % 3))
        running -= 1
        return index

    results = [
        result
        async for result in triton.in_order_bounded((call(i) for i in range(20)), 4)
    ]
    assert results == list(range(20))
    assert peak == 4


async def test_chunk_failure_cancels_running_calls():
    cancelled = []

    async def call(index: int) -> int:
        if index == 1:
            raise RuntimeError("chunk failed")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(index)
            raise
        return index

    with pytest.raises(RuntimeError, match="chunk failed"):
        async for _ in triton.in_order_bounded((call(i) for i in range(1, 10)), 3):
            pass
    await asyncio.sleep(0)
    assert cancelled == [2, 3]


async def test_context_of_exactly_one_chunk_needs_one_call():
    fake = FakeTriton(handler=windowed_handler(num_windows=4))
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=qa_body(context="a b c d"))
    assert len(fake.client_calls) == 1
    assert response.json()["answer"] == "d"


async def test_step_error_becomes_422():
    def reject(call, model):
        body = {
            "error": "doc_stride 370 leaves no room",
            "error_type": "invalid_parameter",
        }
        detail = "in ensemble: triton-qa-error:" + json.dumps(body) + " (step tokenize)"
        raise grpc_error("INVALID_ARGUMENT", detail)

    async with running_gateway(FakeTriton(handler=reject)) as (client, _):
        response = await client.post("/", json=qa_body(doc_stride=370))
    assert response.status_code == 422
    assert response.json() == {
        "error": "doc_stride 370 leaves no room",
        "error_type": "invalid_parameter",
    }


async def test_step_error_in_batch_names_pair():
    def reject_second(call, model):
        if call.question == "B?":
            body = {
                "error": "question too long",
                "error_type": "invalid_input",
                "status": 422,
            }
            raise grpc_error("INVALID_ARGUMENT", "triton-qa-error:" + json.dumps(body))
        return {
            "num_windows": 1,
            "window_start": 0,
            "window_count": 1,
            "answers": [{"answer": "a", "score": 0.5, "start": 0, "end": 1}],
        }

    inputs = [{"question": "A?", "context": "a"}, {"question": "B?", "context": "b"}]
    async with running_gateway(FakeTriton(handler=reject_second)) as (client, _):
        response = await client.post("/", json={"inputs": inputs})
    assert response.status_code == 422
    assert response.json()["error"] == "inputs[1]: question too long"
    assert response.json()["error_type"] == "invalid_input"


@pytest.mark.parametrize(
    "result",
    [
        "not json",
        json.dumps([1, 2]),
        json.dumps(
            {"num_windows": 1, "window_start": 0, "window_count": 1, "answers": []}
        ),
        json.dumps(
            {
                "num_windows": 1,
                "window_start": 0,
                "window_count": 1,
                "answers": [{"answer": "Bob", "score": 0.5, "start": 0, "end": 3}],
            }
        ),
        json.dumps(
            {
                "num_windows": 3,
                "window_start": 0,
                "window_count": 0,
                "candidates": [],
                "null_score": 0.1,
            }
        ),
    ],
    ids=["not-json", "array", "empty-answers", "answer-not-in-context", "no-progress"],
)
async def test_invalid_result_becomes_502(result):
    fake = FakeTriton(handler=lambda call, model: result)
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=qa_body(context="Alice ran it."))
    assert response.status_code == 502
    assert response.json()["error_type"] == "triton_error"
    assert "acme/tiny-qa returned an invalid result" in response.json()["error"]


async def test_model_route_with_slash_and_trailing_slash():
    models = [FakeModel(), FakeModel(model_id="other/qa", name="other--qa")]
    async with running_gateway(FakeTriton(models=models)) as (client, _):
        first = await client.post("/models/other/qa", json=qa_body())
        second = await client.post("/models/other/qa/?x=1", json=qa_body())
    assert first.status_code == 200
    assert second.status_code == 200


async def test_default_model_setting_selects_model():
    fake = FakeTriton(
        models=[FakeModel(), FakeModel(model_id="other/qa", name="other--qa")]
    )
    async with running_gateway(fake, default_model="other/qa") as (client, _):
        response = await client.post("/", json=qa_body())
    assert response.status_code == 200
    assert [c.model_name for c in fake.client_calls] == ["other--qa"]


async def test_several_models_without_default_is_404():
    fake = FakeTriton(
        models=[FakeModel(), FakeModel(model_id="other/qa", name="other--qa")]
    )
    async with running_gateway(fake) as (client, _):
        response = await client.post("/", json=qa_body())
    assert response.status_code == 404
    assert response.json()["error_type"] == "model_not_found"
    assert "acme/tiny-qa, other/qa" in response.json()["error"]
    assert "TRITON_QA_DEFAULT_MODEL" in response.json()["error"]


async def test_unknown_model_is_404_naming_available():
    async with running_gateway() as (client, _):
        response = await client.post("/models/nobody/none", json=qa_body())
    assert response.status_code == 404
    assert response.json() == {
        "error": "model nobody/none is not served here; available models: acme/tiny-qa",
        "error_type": "model_not_found",
    }


async def test_model_list():
    async with running_gateway() as (client, _):
        response = await client.get("/models")
    assert response.json() == {
        "default_model": "acme/tiny-qa",
        "models": [
            {
                "model_id": "acme/tiny-qa",
                "ensemble": "acme--tiny-qa",
                "model_family": "roberta",
                "model_max_length": 512,
                "window_batch_size": 4,
                "ready": True,
                "default": True,
            }
        ],
    }


async def test_non_qa_models_are_not_listed():
    fake = FakeTriton()
    original = fake.get_model_config

    async def config(name, **kwargs):
        response = await original(name, **kwargs)
        if name == "acme--tiny-qa":
            del response["config"]["parameters"]["model_id"]
        return response

    fake.get_model_config = config
    async with running_gateway(fake) as (client, gateway):
        response = await client.get("/models")
    assert response.json()["models"] == []
    assert gateway.registry.discovered


async def test_empty_model_path_is_404():
    async with running_gateway() as (client, _):
        response = await client.post("/models/", json=qa_body())
    assert response.status_code == 404
    assert response.json()["error"].startswith("the path names no model")
