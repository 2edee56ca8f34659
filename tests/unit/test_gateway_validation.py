"""Request validation: every rule, with the status and the message it gives."""

from __future__ import annotations

import json

import pytest

from gateway.errors import GatewayError
from gateway.validation import parse_request
from tests.unit.gateway_fakes import FakeTriton, anyio_backend, qa_body, running_gateway  # noqa: F401

pytestmark = pytest.mark.anyio

CONTEXT = "Alice ran the library."


def parse(body: object, *, max_batch_inputs: int = 4, model_max_length: int = 512):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(
        raw,
        max_batch_inputs=max_batch_inputs,
        model_max_length=model_max_length,
        model_id="acme/tiny-qa",
    )


# (body, status, fragments the message must contain)
REJECTED = [
    (b"", 400, ["request body is empty"]),
    (b"{not json", 400, ["not valid JSON"]),
    (b"[" * 100_000, 400, ["not valid JSON"]),
    (b"\xff\xfe\x00", 400, ["not valid JSON"]),
    (b'"text"', 400, ["must be a JSON object", '"text" (string)']),
    (b"[]", 400, ["must be a JSON object", "[] (array)"]),
    (b"null", 400, ["must be a JSON object", "null"]),
    ({}, 422, ["inputs is missing"]),
    (
        {"inputs": qa_body()["inputs"], "model": "x"},
        422,
        ["model is not a valid field"],
    ),
    ({"inputs": "Who?"}, 422, ["inputs must be an object", '"Who?" (string)']),
    ({"inputs": 5}, 422, ["inputs must be an object", "5 (number)"]),
    ({"inputs": {"question": "Who?"}}, 422, ["inputs.context is missing"]),
    ({"inputs": {"context": CONTEXT}}, 422, ["inputs.question is missing"]),
    (
        {"inputs": {"question": "Who?", "context": CONTEXT, "answer": "x"}},
        422,
        ["inputs.answer is not a valid field", "question, context"],
    ),
    (
        qa_body(question=""),
        422,
        ["inputs.question must be a string", 'got "" (string)'],
    ),
    (qa_body(question="   "), 422, ["inputs.question must be", 'got "   " (string)']),
    (
        qa_body(context="   \n\t "),
        422,
        ["inputs.context must be", "not empty or only whitespace"],
    ),
    (qa_body(question=None), 422, ["inputs.question must be a string", "got null"]),
    (qa_body(question=3), 422, ["inputs.question must be a string", "got 3 (number)"]),
    (qa_body(context=["a"]), 422, ["must both be strings or both be lists"]),
    (
        qa_body(question="\ud800x"),
        422,
        ["inputs.question must be valid Unicode", "index 0"],
    ),
    (
        {"inputs": {"question": ["a", "b"], "context": ["c"]}},
        422,
        ["lists of equal length", "got 2 and 1"],
    ),
    ({"inputs": []}, 422, ["at least one question-context pair"]),
    (
        {"inputs": {"question": [], "context": []}},
        422,
        ["at least one question-context pair"],
    ),
    (
        {"inputs": {"question": ["a", " "], "context": ["b", "c"]}},
        422,
        ["inputs.question[1] must be a string"],
    ),
    ({"inputs": [qa_body()["inputs"], 7]}, 422, ["inputs[1] must be an object"]),
    (
        {"inputs": [qa_body()["inputs"], {"question": "Who?"}]},
        422,
        ["inputs[1].context is missing"],
    ),
    (
        {"inputs": [qa_body()["inputs"]] * 5},
        422,
        ["5 question-context pairs", "limit of 4"],
    ),
    (
        {"inputs": qa_body()["inputs"], "parameters": [1]},
        422,
        ["parameters must be an object", "[1] (array)"],
    ),
    (
        {"inputs": qa_body()["inputs"], "options": "fast"},
        422,
        ["options must be an object"],
    ),
    (
        qa_body(topk=3),
        422,
        ["parameters.topk is not a valid parameter", "top_k, doc_stride"],
    ),
    (
        qa_body(top_k="3"),
        422,
        ["parameters.top_k must be an integer from 1", '"3" (string)'],
    ),
    (qa_body(top_k=2.0), 422, ["parameters.top_k must be an integer", "2.0 (number)"]),
    (
        qa_body(top_k=True),
        422,
        ["parameters.top_k must be an integer", "true (boolean)"],
    ),
    (
        qa_body(top_k=0),
        422,
        ["parameters.top_k must be an integer from 1 to 2147483647"],
    ),
    (qa_body(top_k=2**31), 422, ["parameters.top_k must be an integer", "2147483648"]),
    (qa_body(top_k=10**30), 422, ["parameters.top_k must be an integer"]),
    (
        qa_body(doc_stride=-5),
        422,
        ["parameters.doc_stride must be an integer from 0", "-5"],
    ),
    (
        qa_body(max_answer_len=0),
        422,
        ["parameters.max_answer_len must be an integer from 1"],
    ),
    (qa_body(max_seq_len=0), 422, ["parameters.max_seq_len must be an integer from 1"]),
    (
        qa_body(max_question_len=0),
        422,
        ["parameters.max_question_len must be an integer"],
    ),
    (
        qa_body(max_seq_len=1024),
        422,
        ["parameters.max_seq_len must be at most 512", "acme/tiny-qa", "got 1024"],
    ),
    (
        qa_body(handle_impossible_answer="true"),
        422,
        ["parameters.handle_impossible_answer must be a boolean", '"true" (string)'],
    ),
    (
        qa_body(align_to_words="false"),
        422,
        ["parameters.align_to_words must be a boolean"],
    ),
    (
        qa_body(align_to_words=0),
        422,
        ["parameters.align_to_words must be a boolean", "0"],
    ),
]


@pytest.mark.parametrize(("body", "status", "fragments"), REJECTED)
async def test_rejected_request(body, status, fragments):
    fake = FakeTriton()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with running_gateway(fake, max_batch_inputs=4) as (client, _):
        response = await client.post("/", content=raw)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"error", "error_type"}
    expected_type = "validation_error" if status == 422 else payload["error_type"]
    assert payload["error_type"] == expected_type
    for fragment in fragments:
        assert fragment in payload["error"]
    assert fake.client_calls == []


def test_every_parameter_error_is_listed():
    body = qa_body(top_k="x", doc_stride=-1, align_to_words="no")
    with pytest.raises(GatewayError) as caught:
        parse(body)
    message = caught.value.message
    assert "parameters.top_k" in message
    assert "parameters.doc_stride" in message
    assert "parameters.align_to_words" in message


def test_single_pair_is_not_batched():
    parsed = parse(qa_body())
    assert parsed.batched is False
    assert [(p.question, p.context) for p in parsed.pairs] == [
        ("Who ran it?", "Alice ran it.")
    ]


def test_list_of_pairs_is_batched():
    inputs = [
        {"question": "A?", "context": "a b"},
        {"question": "B?", "context": "c d"},
    ]
    parsed = parse({"inputs": inputs})
    assert parsed.batched is True
    assert [p.question for p in parsed.pairs] == ["A?", "B?"]


def test_columns_become_pairs():
    parsed = parse({"inputs": {"question": ["A?", "B?"], "context": ["a", "b"]}})
    assert parsed.batched is True
    assert [(p.question, p.context) for p in parsed.pairs] == [("A?", "a"), ("B?", "b")]


def test_null_parameters_mean_unset():
    parsed = parse({"inputs": qa_body()["inputs"], "parameters": {"top_k": None}})
    assert parsed.parameters == {}
    assert parse({"inputs": qa_body()["inputs"], "parameters": None}).parameters == {}


def test_zero_and_false_are_kept():
    parsed = parse(qa_body(doc_stride=0, handle_impossible_answer=False))
    assert parsed.parameters == {"doc_stride": 0, "handle_impossible_answer": False}


def test_options_are_accepted_and_ignored():
    parsed = parse({**qa_body(), "options": {"wait_for_model": True}})
    assert parsed.parameters == {}


def test_max_seq_len_at_model_limit_is_accepted():
    assert parse(qa_body(max_seq_len=512)).parameters == {"max_seq_len": 512}


def test_text_keeps_nul_and_emoji():
    context = "Party 🎉 at Zoë's.\u0000"
    parsed = parse(qa_body(context=context))
    assert parsed.pairs[0].context == context
