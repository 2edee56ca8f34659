"""Every acceptance case against the running stack: contract and pipeline parity.

Each request goes through real HTTP to the gateway, then over gRPC to a real
tritonserver. Successful answers are compared with the transformers 4.57
pipeline on the same tiny checkpoint.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import load_cases
from tests.reference import (
    assert_contract_items,
    assert_matches_reference,
    expected_answers,
)

pytestmark = pytest.mark.integration

# Cases whose request is invalid: the status and a word the message must contain.
REJECTED = {
    "013-whitespace-only-context": (422, "context"),
    "014-empty-question": (422, "question"),
    "016-whitespace-only-question": (422, "question"),
    "017-null-fields": (422, "question"),
    "019-doc-stride-near-limit-rust-panic": (422, "doc_stride"),
    "025-doc-stride-negative": (422, "doc_stride"),
    "056-bad-request-in-dynamic-batch": (422, "doc_stride"),
    "061-top-k-zero": (422, "top_k"),
    "062-top-k-string": (422, "top_k"),
    "064-max-answer-len-zero": (422, "max_answer_len"),
}
CASES = load_cases()
FAMILIES = ("roberta", "bert", "distilbert")


def model_path(stack, family: str) -> str:
    return f"/models/{stack.model_ids[family]}"


def as_list(body):
    return body if isinstance(body, list) else [body]


def check_success(body, request_body, pipeline):
    inputs = request_body["inputs"]
    parameters = request_body.get("parameters") or {}
    top_k = parameters.get("top_k", 1)
    if top_k == 1:
        assert isinstance(body, dict), body
    else:
        assert isinstance(body, list), body
    answers = as_list(body)
    assert_contract_items(answers, inputs["context"], top_k)
    question = inputs["question"]
    max_question_len = parameters.get("max_question_len", 64)
    truncated = pipeline.truncate_question(question, max_question_len)
    expected = expected_answers(pipeline, truncated, inputs["context"], parameters)
    assert_matches_reference(answers, expected, top_k)


class PipelineWithTruncation:
    """A reference pipeline that also truncates questions the way the service does."""

    def __init__(self, pipeline, encoder):
        self.pipeline = pipeline
        self.encoder = encoder

    def __call__(self, **kwargs):
        return self.pipeline(**kwargs)

    def truncate_question(self, question, max_question_len):
        return self.encoder.truncate_question(question, max_question_len)


@pytest.fixture(scope="module")
def references(pipelines, checkpoints):
    from python_backend.tokenization import WindowEncoder, read_tokenizer_info

    return {
        family: PipelineWithTruncation(
            pipelines[family],
            WindowEncoder.from_files(
                checkpoints[family] / "tokenizer.json",
                read_tokenizer_info(checkpoints[family]),
            ),
        )
        for family in FAMILIES
    }


@pytest.fixture(scope="module")
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=120) as http:
        yield http


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name,case", CASES, ids=[name for name, _ in CASES])
def test_case(family, name, case, stack, client, references):
    request_body = case["request"]
    response = client.post(model_path(stack, family), json=request_body)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    if name in REJECTED:
        status, word = REJECTED[name]
        assert response.status_code == status, body
        assert set(body) >= {"error", "error_type"}, body
        assert word in body["error"], body
    elif isinstance(request_body["inputs"].get("question"), list):
        assert response.status_code == 200, body
        assert isinstance(body, list) and len(body) == len(
            request_body["inputs"]["question"]
        )
        parameters = request_body.get("parameters") or {}
        for result, question, context in zip(
            body, request_body["inputs"]["question"], request_body["inputs"]["context"]
        ):
            single = {
                "inputs": {"question": question, "context": context},
                "parameters": parameters,
            }
            check_success(result, single, references[family])
    else:
        assert response.status_code == 200, body
        check_success(body, request_body, references[family])
    follow_up = case.get("follow_up_request")
    if follow_up:
        again = client.post(model_path(stack, family), json=follow_up)
        assert again.status_code == 200, again.text
        check_success(again.json(), follow_up, references[family])


def concurrent_posts(stack, path, bodies):
    async def send_all():
        async with httpx.AsyncClient(base_url=stack.url, timeout=120) as http:
            return await asyncio.gather(
                *(http.post(path, json=body) for body in bodies)
            )

    return asyncio.run(send_all())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "name",
    [
        "055-dynamic-batch-ragged-consistency",
        "056-bad-request-in-dynamic-batch",
        "007-score-independent-of-top-k",
    ],
)
def test_companions_batched_together(family, name, stack, references):
    """Requests sent at once share dynamic batches and still get their own answers."""
    case = dict(CASES)[name]
    bodies = [case["request"], *case["companion_requests"]] * 3
    responses = concurrent_posts(stack, model_path(stack, family), bodies)
    for body, response in zip(bodies, responses):
        if name in REJECTED and body is case["request"]:
            assert response.status_code == 422, response.text
            continue
        assert response.status_code == 200, response.text
        check_success(response.json(), body, references[family])


def test_thirty_thousand_word_context(stack, client, references):
    """The model step's batch limit is a chunk size, not a context-length limit."""
    words = [
        "The",
        "ferry",
        "captain",
        "was",
        "Ilse",
        "Marwick",
        "and",
        "the",
        "harbour",
        "stayed",
        "open",
        "every",
        "winter",
    ]
    context = " ".join(words[index % len(words)] for index in range(30_000))
    body = {
        "inputs": {"question": "Who was the ferry captain?", "context": context},
        "parameters": {"top_k": 2, "max_seq_len": 64, "doc_stride": 8},
    }
    response = client.post("/", json=body)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert_contract_items(answers, context, 2)
