"""Answer questions in one process: tokenizer, ONNX Runtime and decoder.

This runs the same code as the three Triton steps without Triton. The tests
use it to compare the decoding with the transformers pipeline, and the
benchmark uses it as the raw ONNX Runtime baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from python_backend import protocol
from python_backend.decoding import (
    DecodeParams,
    decode_windows,
    finalize_answers,
    merge_chunk_results,
    partial_candidates,
)
from python_backend.tokenization import (
    TokenizerInfo,
    WindowEncoder,
    resolve_window_params,
)


class LocalAnswerer:
    """The ensemble's three steps as plain function calls."""

    def __init__(
        self,
        tokenizer_json: Path,
        info: TokenizerInfo,
        onnx_path: Path,
        window_batch_size: int = 16,
        session_options: ort.SessionOptions | None = None,
    ):
        self.encoder = WindowEncoder.from_files(tokenizer_json, info)
        self.session = ort.InferenceSession(
            str(onnx_path),
            sess_options=session_options,
            providers=["CPUExecutionProvider"],
        )
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.window_batch_size = window_batch_size

    def run_windows(
        self, tensors: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        feed = {name: tensors[name] for name in self.input_names}
        start_logits, end_logits = self.session.run(
            [protocol.START_LOGITS, protocol.END_LOGITS], feed
        )
        return start_logits, end_logits

    def answer(
        self, question: str, context: str, parameters: dict[str, Any]
    ) -> list[dict]:
        """Return the answers for one pair; raises `RequestError` for bad input."""
        window = resolve_window_params(parameters, self.encoder.info.model_max_length)
        encodings = self.encoder.encode(question, context, window)
        params = DecodeParams(
            **{
                name: parameters[name]
                for name in (
                    "top_k",
                    "max_answer_len",
                    "handle_impossible_answer",
                    "align_to_words",
                )
                if name in parameters
            }
        )
        results = []
        for start in range(0, len(encodings), self.window_batch_size):
            tensors = self.encoder.window_tensors(
                encodings, start, self.window_batch_size
            )
            start_logits, end_logits = self.run_windows(tensors)
            candidates, null_score = decode_windows(
                context,
                start_logits,
                end_logits,
                tensors[protocol.ATTENTION_MASK],
                tensors[protocol.CANDIDATE_MASK],
                tensors[protocol.OFFSETS],
                tensors[protocol.WORD_IDS],
                params,
            )
            if len(encodings) <= self.window_batch_size:
                return finalize_answers(candidates, null_score, params)
            results.append(
                {"candidates": partial_candidates(candidates), "null_score": null_score}
            )
        return merge_chunk_results(
            results, params.top_k, params.handle_impossible_answer
        )
