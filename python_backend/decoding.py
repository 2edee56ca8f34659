"""Turn start and end logits into answers, as the transformers pipeline does.

The span search follows the transformers 4.x `QuestionAnsweringPipeline` step by
step (softmax per window over the allowed tokens, span score `p_start * p_end`
within `max_answer_len` tokens, candidates over-fetched before word alignment,
answers with equal text merged by adding their scores, the null score as the
minimum over windows of the first token's product). The same numpy operations
are used in the same order, so ties break the same way.

`finalize_answers` then applies this service's deliberate differences: no
zero-score items, whitespace trimmed from answers, the null answer only when
`handle_impossible_answer` is true, and at most one item per span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The pipeline gives masked tokens this logit before its softmax.
MASKED_LOGIT = -10000.0
# The pipeline's starting value for the minimum null score.
NO_NULL_SCORE = 1000000.0


@dataclass(frozen=True)
class DecodeParams:
    """The API parameters that the postprocessing step uses."""

    top_k: int = 1
    max_answer_len: int = 15
    handle_impossible_answer: bool = False
    align_to_words: bool = True


def window_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    allowed: np.ndarray,
    params: DecodeParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Find the best spans of one unpadded window.

    Returns token starts, token ends, their scores, and the window's null score
    (start times end probability of the first token).
    """
    allowed = allowed.astype(bool)[None, :]
    start = np.where(~allowed, MASKED_LOGIT, start_logits[None, :])
    end = np.where(~allowed, MASKED_LOGIT, end_logits[None, :])
    start = np.exp(start - start.max(axis=-1, keepdims=True))
    start = start / start.sum()
    end = np.exp(end - end.max(axis=-1, keepdims=True))
    end = end / end.sum()
    null_score = (start[0, 0] * end[0, 0]).item()
    start[0, 0] = end[0, 0] = 0.0

    # Over-fetch, because word alignment can map several spans to one answer.
    fetch_count = params.top_k * 2 + 10 if params.align_to_words else params.top_k
    outer = np.matmul(np.expand_dims(start, -1), np.expand_dims(end, 1))
    spans = np.tril(np.triu(outer), params.max_answer_len - 1)
    flat = spans.flatten()
    if fetch_count == 1:
        order = np.asarray([np.argmax(flat)])
    elif len(flat) < fetch_count:
        order = np.argsort(-flat)
    else:
        best = np.argpartition(-flat, fetch_count)[0:fetch_count]
        order = best[np.argsort(-flat[best])]
    starts, ends = np.unravel_index(order, spans.shape)[1:]
    # Position 0 always counts as allowed here, as in the pipeline, where the
    # row index of the 2-D mask's nonzero() result takes part in this test.
    allowed_positions = np.concatenate(([0], allowed[0].nonzero()[0]))
    keep = np.isin(starts, allowed_positions) & np.isin(ends, allowed_positions)
    starts = starts[keep]
    ends = ends[keep]
    return starts, ends, spans[0, starts, ends], null_score


def span_chars(
    start: int,
    end: int,
    offsets: np.ndarray,
    word_ids: np.ndarray,
    align_to_words: bool,
) -> tuple[int, int]:
    """Map a token span to character offsets, widening it to whole words if asked.

    `word_ids` contains each context token's word index and -1 elsewhere. As in the
    pipeline, a span whose ends are not in a context word keeps token offsets.
    """
    if align_to_words:
        start_word = int(word_ids[start])
        end_word = int(word_ids[end])
        if start_word >= 0 and end_word >= 0:
            start_tokens = np.flatnonzero(word_ids == start_word)
            end_tokens = np.flatnonzero(word_ids == end_word)
            return int(offsets[start_tokens[0], 0]), int(offsets[end_tokens[-1], 1])
    return int(offsets[start, 0]), int(offsets[end, 1])


class AnswerMerger:
    """Collect answers in window order, adding the scores of equal texts.

    Texts compare case-insensitively, and the first answer with a text keeps
    its span, as in the pipeline.
    """

    def __init__(self) -> None:
        self.answers: list[dict] = []
        self._index: dict[str, int] = {}

    def add(self, answer: str, score: float, start: int, end: int) -> None:
        key = answer.lower()
        position = self._index.get(key)
        if position is None:
            self._index[key] = len(self.answers)
            self.answers.append(
                {"answer": answer, "score": score, "start": start, "end": end}
            )
        else:
            self.answers[position]["score"] += score


def decode_windows(
    context: str,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    attention_mask: np.ndarray,
    candidate_mask: np.ndarray,
    offsets: np.ndarray,
    word_ids: np.ndarray,
    params: DecodeParams,
) -> tuple[list[dict], float]:
    """Decode a batch of padded windows of one context.

    Returns the merged candidate answers in window order and the minimum null
    score over the windows.
    """
    merger = AnswerMerger()
    null_score = NO_NULL_SCORE
    for row in range(start_logits.shape[0]):
        # The pipeline runs unpadded windows, so cut the padding off before the
        # softmax to sum over exactly the same values.
        size = int(attention_mask[row].sum())
        starts, ends, scores, window_null = window_spans(
            start_logits[row, :size].astype(np.float32),
            end_logits[row, :size].astype(np.float32),
            candidate_mask[row, :size],
            params,
        )
        null_score = min(null_score, window_null)
        for start, end, score in zip(starts, ends, scores):
            first, last = span_chars(
                int(start), int(end), offsets[row], word_ids[row], params.align_to_words
            )
            merger.add(context[first:last], score.item(), first, last)
    return merger.answers, null_score


def finalize_answers(
    candidates: list[dict], null_score: float, params: DecodeParams
) -> list[dict]:
    """Rank merged candidates and apply the response rules.

    The result is sorted by score, best first, and contains 1 to `top_k` items:
    answers trimmed of surrounding whitespace, without zero scores, empty
    texts or repeated spans, plus the null answer `("", 0, 0)` when
    `handle_impossible_answer` is true. If no span survives these rules, the
    result is the null answer alone, so a response is never empty.
    """
    ranked = [dict(item) for item in candidates]
    null_answer = {"answer": "", "score": null_score, "start": 0, "end": 0}
    if params.handle_impossible_answer:
        ranked.append(null_answer)
    ranked.sort(key=lambda item: item["score"], reverse=True)

    results: list[dict] = []
    seen_spans: set[tuple[int, int]] = set()
    for item in ranked:
        if not item["score"] > 0.0:
            continue
        if item is not null_answer:
            item = _trim(item)
            if not item["answer"]:
                continue
        span = (item["start"], item["end"])
        if span in seen_spans:
            continue
        seen_spans.add(span)
        results.append(item)
        if len(results) == params.top_k:
            break
    if not results:
        results.append(null_answer)
    return results


class ChunkMerger:
    """Merge the `RESULT` objects of window chunks as they arrive, in window order.

    Only the merged answers are kept, so memory grows with the number of
    distinct answer texts, not with the number of chunks.
    """

    def __init__(self) -> None:
        self._merger = AnswerMerger()
        self.null_score = NO_NULL_SCORE

    def add(self, result: dict) -> None:
        for item in result["candidates"]:
            self._merger.add(item["answer"], item["score"], item["start"], item["end"])
        self.null_score = min(self.null_score, result["null_score"])

    def answers(self, top_k: int, handle_impossible_answer: bool) -> list[dict]:
        params = DecodeParams(
            top_k=top_k, handle_impossible_answer=handle_impossible_answer
        )
        return finalize_answers(self._merger.answers, self.null_score, params)


def merge_chunk_results(
    results: list[dict], top_k: int, handle_impossible_answer: bool
) -> list[dict]:
    """Merge the `RESULT` objects of window chunks, in window order, into answers."""
    if len(results) == 1 and "answers" in results[0]:
        return results[0]["answers"]
    merger = ChunkMerger()
    for result in results:
        merger.add(result)
    return merger.answers(top_k, handle_impossible_answer)


def partial_candidates(candidates: list[dict]) -> list[dict]:
    """Return the candidates of a chunk that can still reach the final answers.

    Zero-score spans never appear in a response, and most of them start at the
    CLS token, so their text is the whole context up to the span's end. They
    are dropped here to keep chunk results small.
    NOTE: the pipeline keeps them while merging, so when a zero-score span has
    the same text as a later scored span, the pipeline reports the earlier
    span's offsets and this service the later one's. Single-chunk requests
    keep them and match the pipeline exactly.
    """
    return [item for item in candidates if item["score"] > 0.0]


def _trim(item: dict) -> dict:
    text = item["answer"]
    stripped = text.lstrip()
    start = item["start"] + len(text) - len(stripped)
    stripped = stripped.rstrip()
    return {
        "answer": stripped,
        "score": item["score"],
        "start": start,
        "end": start + len(stripped),
    }
