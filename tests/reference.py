"""The transformers pipeline's answers, with this service's documented differences.

The service returns what the transformers 4.57 `QuestionAnsweringPipeline`
returns, except that it drops zero-score items, trims whitespace around
answers (dropping answers that become empty), keeps one item per span, always
returns a list here, and honours `max_question_len`. `expected_answers` applies
exactly those rules to the pipeline's output so the two can be compared.
"""

from __future__ import annotations

import math

PIPELINE_PARAMETERS = (
    "top_k",
    "doc_stride",
    "max_answer_len",
    "max_seq_len",
    "max_question_len",
    "handle_impossible_answer",
    "align_to_words",
)


def expected_answers(
    pipeline, question: str, context: str, parameters: dict
) -> list[dict]:
    """Run the pipeline and apply the service's rules to its answers."""
    kwargs = {
        key: value for key, value in parameters.items() if key in PIPELINE_PARAMETERS
    }
    output = pipeline(question=question, context=context, **kwargs)
    items = output if isinstance(output, list) else [output]
    results: list[dict] = []
    spans: set[tuple[int, int]] = set()
    for item in items:
        if not item["score"] > 0.0:
            continue
        is_null = item["answer"] == "" and item["start"] == item["end"] == 0
        if not is_null:
            text = item["answer"]
            stripped = text.lstrip()
            start = item["start"] + len(text) - len(stripped)
            stripped = stripped.rstrip()
            if not stripped:
                continue
            item = {
                "answer": stripped,
                "score": item["score"],
                "start": start,
                "end": start + len(stripped),
            }
        span = (item["start"], item["end"])
        if span in spans:
            continue
        spans.add(span)
        results.append(item)
    return results


def assert_matches_reference(
    actual: list[dict], expected: list[dict], top_k: int
) -> None:
    """Check the service's answers against `expected_answers` output.

    The service may return more items than the pipeline when the pipeline's
    list held items that the service's rules drop, so only the pipeline's
    items are compared position by position.
    """
    assert 1 <= len(actual) <= top_k, actual
    assert len(actual) >= len(expected), (actual, expected)
    for position, (got, want) in enumerate(zip(actual, expected)):
        assert got["answer"] == want["answer"], (position, got, want)
        assert got["start"] == want["start"], (position, got, want)
        assert got["end"] == want["end"], (position, got, want)
        assert math.isclose(got["score"], want["score"], rel_tol=1e-4, abs_tol=1e-12), (
            position,
            got,
            want,
        )


def assert_contract_items(answers: list[dict], context: str, top_k: int) -> None:
    """Check the shape rules that every successful answer list obeys."""
    assert 1 <= len(answers) <= top_k
    spans = set()
    previous = math.inf
    for item in answers:
        assert set(item) == {"answer", "score", "start", "end"}, item
        assert isinstance(item["answer"], str)
        assert isinstance(item["start"], int) and isinstance(item["end"], int)
        assert isinstance(item["score"], float)
        assert 0 <= item["start"] <= item["end"] <= len(context), item
        assert context[item["start"] : item["end"]] == item["answer"], item
        assert item["score"] > 0.0, item
        assert item["score"] <= previous, answers
        previous = item["score"]
        if item["answer"]:
            assert item["answer"] == item["answer"].strip(), item
        else:
            assert item["start"] == item["end"] == 0, item
        assert (item["start"], item["end"]) not in spans, answers
        spans.add((item["start"], item["end"]))
