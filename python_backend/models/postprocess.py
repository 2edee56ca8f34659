"""Triton step 3: turn logits into answers with character offsets."""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from python_backend import protocol
from python_backend.decoding import (
    DecodeParams,
    decode_windows,
    finalize_answers,
    partial_candidates,
)
from python_backend.models.common import (
    error_response,
    internal_error_response,
    read_array,
    read_text,
)
from python_backend.parameters import parse_parameters
from python_backend.tokenization import RequestError


class TritonPythonModel:
    """Decode the windows of one request into a `RESULT` JSON string."""

    def initialize(self, args: dict) -> None:
        self.logger = pb_utils.Logger

    def execute(self, requests: list) -> list:
        return [self._respond(request) for request in requests]

    def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            result = self._decode(request)
            text = json.dumps(result, ensure_ascii=False, allow_nan=False)
        except RequestError as error:
            return error_response(error)
        except ValueError as error:
            self.logger.log_error(f"postprocessing failed: {error}")
            return internal_error_response(f"postprocessing failed: {error}")
        output = np.asarray([text.encode("utf-8")], dtype=np.object_)
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(protocol.RESULT, output)]
        )

    def _decode(self, request) -> dict:
        parameters = parse_parameters(request.parameters())
        params = DecodeParams(
            top_k=parameters.get("top_k", protocol.DEFAULTS["top_k"]),
            max_answer_len=parameters.get(
                "max_answer_len", protocol.DEFAULTS["max_answer_len"]
            ),
            handle_impossible_answer=parameters.get(
                "handle_impossible_answer",
                protocol.DEFAULTS["handle_impossible_answer"],
            ),
            align_to_words=parameters.get(
                "align_to_words", protocol.DEFAULTS["align_to_words"]
            ),
        )
        context = read_text(request, protocol.CONTEXT)
        start_logits = read_array(request, protocol.START_LOGITS)
        num_windows = int(read_array(request, protocol.NUM_WINDOWS).reshape(-1)[0])
        window_start = int(read_array(request, protocol.WINDOW_START).reshape(-1)[0])
        candidates, null_score = decode_windows(
            context,
            start_logits,
            read_array(request, protocol.END_LOGITS),
            read_array(request, protocol.ATTENTION_MASK),
            read_array(request, protocol.CANDIDATE_MASK),
            read_array(request, protocol.OFFSETS),
            read_array(request, protocol.WORD_IDS),
            params,
        )
        window_count = start_logits.shape[0]
        result = {
            "num_windows": num_windows,
            "window_start": window_start,
            "window_count": window_count,
        }
        if window_start == 0 and window_count == num_windows:
            result["answers"] = finalize_answers(candidates, null_score, params)
        else:
            result["candidates"] = partial_candidates(candidates)
            result["null_score"] = null_score
        return result
