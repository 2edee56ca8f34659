"""Window building and decoding against the transformers 4.57 pipeline, in process.

ONNX Runtime runs the exported tiny checkpoints here, so these tests check
`python_backend` itself; the integration tests check the same through Triton.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from python_backend.tokenization import RequestError, read_tokenizer_info
from tests.conftest import CACHE_DIR, load_cases
from tests.reference import (
    assert_contract_items,
    assert_matches_reference,
    expected_answers,
)
from triton_qa.local import LocalAnswerer

FAMILIES = ("roberta", "bert", "distilbert")


@pytest.fixture(scope="module")
def answerers(checkpoints) -> dict[str, LocalAnswerer]:
    from triton_qa.export import export_onnx

    result = {}
    for family, folder in checkpoints.items():
        onnx_path = CACHE_DIR / "onnx" / f"{family}-seed0.onnx"
        if not onnx_path.exists():
            export_onnx(folder, onnx_path)
        # A small chunk size makes long contexts cross several chunks.
        result[family] = LocalAnswerer(
            folder / "tokenizer.json",
            read_tokenizer_info(folder),
            onnx_path,
            window_batch_size=4,
        )
    return result


def _single_pair_cases():
    for name, case in load_cases():
        inputs = case["request"]["inputs"]
        question, context = inputs.get("question"), inputs.get("context")
        texts = isinstance(question, str) and isinstance(context, str)
        if texts and question.strip() and context.strip():
            yield name, case["request"]


CASES = list(_single_pair_cases())


def _compare(answerer, pipeline, question, context, parameters):
    top_k = parameters.get("top_k", 1)
    try:
        actual = answerer.answer(question, context, parameters)
    except RequestError as error:
        # The service rejects a stride that leaves no room in a window even
        # when the context is short enough for the pipeline to answer.
        assert error.field in ("doc_stride", "max_seq_len", "max_question_len"), (
            error.message
        )
        return
    assert_contract_items(actual, context, top_k)
    # max_question_len is honoured by the service and ignored by the pipeline,
    # so the pipeline gets the already truncated question.
    truncated = answerer.encoder.truncate_question(
        question, parameters.get("max_question_len", 64)
    )
    expected = expected_answers(pipeline, truncated, context, parameters)
    assert_matches_reference(actual, expected, top_k)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("name,request_body", CASES, ids=[name for name, _ in CASES])
def test_case_matches_pipeline(family, name, request_body, answerers, pipelines):
    inputs = request_body["inputs"]
    parameters = request_body.get("parameters") or {}
    if any(
        not isinstance(value, (int, bool)) or value is None
        for value in parameters.values()
    ):
        pytest.skip("the gateway rejects non-integer parameters before decoding")
    if parameters.get("top_k", 1) < 1 or parameters.get("max_answer_len", 1) < 1:
        pytest.skip("the gateway rejects values below 1 before decoding")
    if parameters.get("doc_stride", 0) < 0:
        pytest.skip("the gateway rejects a negative doc_stride before decoding")
    _compare(
        answerers[family],
        pipelines[family],
        inputs["question"],
        inputs["context"],
        parameters,
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_stride_too_large_rejected(family, answerers):
    context = "word " * 600
    with pytest.raises(RequestError) as raised:
        answerers[family].answer("Who?", context, {"max_seq_len": 64, "doc_stride": 60})
    assert raised.value.field == "doc_stride"
    assert "doc_stride=60" in raised.value.message


@pytest.mark.parametrize("family", FAMILIES)
def test_no_room_for_context_rejected(family, answerers):
    question = "where " * 40
    with pytest.raises(RequestError) as raised:
        answerers[family].answer(question, "A short context.", {"max_seq_len": 16})
    assert raised.value.field == "max_seq_len"


@pytest.mark.parametrize("family", FAMILIES)
def test_question_truncated_to_limit(family, answerers):
    encoder = answerers[family].encoder
    question = "Which old " + "old " * 100 + "librarian?"
    truncated = encoder.truncate_question(question, 16)
    assert question.startswith(truncated)
    encoder.tokenizer.no_truncation()
    assert len(encoder.tokenizer.encode(truncated, add_special_tokens=False).ids) <= 16


@pytest.mark.parametrize("family", FAMILIES)
def test_chunked_equals_unchunked(family, answerers, checkpoints):
    """Long contexts split into window chunks give the answers of one big batch."""
    answerer = answerers[family]
    wide = LocalAnswerer(
        checkpoints[family] / "tokenizer.json",
        answerer.encoder.info,
        CACHE_DIR / "onnx" / f"{family}-seed0.onnx",
        window_batch_size=512,
    )
    request_body = next(body for name, body in CASES if name.startswith("032"))
    inputs = request_body["inputs"]
    parameters = request_body["parameters"]
    chunked = answerer.answer(inputs["question"], inputs["context"], parameters)
    whole = wide.answer(inputs["question"], inputs["context"], parameters)
    assert [(a["answer"], a["start"], a["end"]) for a in chunked] == [
        (a["answer"], a["start"], a["end"]) for a in whole
    ]
    for got, want in zip(chunked, whole):
        assert got["score"] == pytest.approx(want["score"], rel=1e-9)


WORDS = st.sampled_from(
    [
        "the",
        "harbour",
        "library",
        "opened",
        "in",
        "1901",
        "river",
        "Edda",
        "Vossberg",
        "pilot",
        "kept",
        "room",
        "北京",
        "首都",
        "Zoë",
        "café",
        "🎉",
        "ไทย",
        "नई",
        ",",
        ".",
        "?",
        "!",
        "-",
    ]
)
TEXT = st.lists(WORDS, min_size=1, max_size=120).map(" ".join)
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", " \u00a0"])


@st.composite
def requests(draw):
    words = draw(st.lists(WORDS, min_size=1, max_size=150))
    separators = draw(st.lists(SEPARATORS, min_size=len(words), max_size=len(words)))
    context = "".join(word + sep for word, sep in zip(words, separators))
    question = draw(TEXT) + "?"
    max_seq_len = draw(st.integers(min_value=24, max_value=96))
    parameters = {
        "top_k": draw(st.integers(min_value=1, max_value=6)),
        "max_answer_len": draw(st.integers(min_value=1, max_value=20)),
        "max_seq_len": max_seq_len,
        "doc_stride": draw(st.integers(min_value=0, max_value=max_seq_len // 2)),
        "max_question_len": draw(st.integers(min_value=1, max_value=16)),
        "handle_impossible_answer": draw(st.booleans()),
        "align_to_words": draw(st.booleans()),
    }
    return question, context, parameters


@pytest.mark.parametrize("family", FAMILIES)
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(generated=requests())
def test_generated_requests_match_pipeline(family, generated, answerers, pipelines):
    question, context, parameters = generated
    _compare(answerers[family], pipelines[family], question, context, parameters)


def test_question_cut_inside_character_rejected(answerers):
    """An emoji is four byte-level tokens, so one token cannot hold any prefix."""
    with pytest.raises(RequestError) as raised:
        answerers["roberta"].answer(
            "🎉 who?", "Alice ran the mill.", {"max_question_len": 1}
        )
    assert raised.value.field == "max_question_len"
    assert "max_question_len=1" in raised.value.message
