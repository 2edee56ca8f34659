"""How often int8 weights change the top answer, over the acceptance cases."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from python_backend.tokenization import RequestError, resolve_window_params
from triton_qa.bench.artifacts import ModelArtifacts
from triton_qa.bench.inprocess import session_options
from triton_qa.build import REPOSITORY_ROOT

logger = logging.getLogger(__name__)

CASES_DIR = REPOSITORY_ROOT / "tests" / "cases"


def case_pairs(cases_dir: Path = CASES_DIR) -> list[tuple[str, str, str, dict]]:
    """Return (case name, question, context, parameters) for every answerable pair."""
    pairs = []
    for path in sorted(cases_dir.glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        request = case["request"]
        inputs = request.get("inputs")
        parameters = request.get("parameters") or {}
        for question, context in _pairs_of(inputs):
            pairs.append((path.stem, question, context, parameters))
    return pairs


def _pairs_of(inputs) -> list[tuple]:
    """Return the (question, context) pairs of an `inputs` value of any shape."""
    if isinstance(inputs, list):
        return [
            (item.get("question"), item.get("context"))
            for item in inputs
            if isinstance(item, dict)
        ]
    if not isinstance(inputs, dict):
        return []
    questions, contexts = inputs.get("question"), inputs.get("context")
    if isinstance(questions, list) and isinstance(contexts, list):
        return list(zip(questions, contexts))
    return [(questions, contexts)]


def top_answer_agreement(
    fp32: ModelArtifacts,
    int8: ModelArtifacts,
    intra_op_threads: int,
    max_windows: int | None = None,
) -> dict:
    """Compare the top answer of the float32 and int8 models on every case pair.

    Pairs that either model rejects as invalid, pairs that are not two
    strings, and pairs of more than `max_windows` windows are left out.
    """
    from triton_qa.local import LocalAnswerer

    answerers = [
        LocalAnswerer(
            artifacts.tokenizer_json,
            artifacts.info,
            artifacts.onnx_path,
            session_options=session_options(intra_op_threads),
        )
        for artifacts in (fp32, int8)
    ]
    same = compared = skipped = 0
    changed = []
    for name, question, context, parameters in case_pairs():
        if not (isinstance(question, str) and isinstance(context, str)):
            continue
        try:
            if (
                max_windows
                and _windows(answerers[0], question, context, parameters) > max_windows
            ):
                skipped += 1
                continue
            tops = [
                _top(answerer.answer(question, context, dict(parameters)))
                for answerer in answerers
            ]
        except (RequestError, TypeError, ValueError):
            continue
        compared += 1
        if tops[0] == tops[1]:
            same += 1
        else:
            changed.append(name)
    logger.info(
        "int8 changed the top answer of %d of %d pairs (%d long pairs skipped)",
        compared - same,
        compared,
        skipped,
    )
    return {
        "pairs": compared,
        "unchanged": same,
        "share_unchanged": round(same / compared, 3) if compared else None,
        "changed_cases": changed,
        "skipped_long_pairs": skipped,
        "max_windows": max_windows,
    }


def _windows(answerer, question: str, context: str, parameters: dict) -> int:
    window = resolve_window_params(parameters, answerer.encoder.info.model_max_length)
    return len(answerer.encoder.encode(question, context, window))


def _top(answers: list[dict]) -> tuple | None:
    if not answers:
        return None
    best = answers[0]
    return best["answer"], best["start"], best["end"]
