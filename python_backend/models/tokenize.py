"""Triton step 1: split the question and context into model windows."""

from __future__ import annotations

import triton_python_backend_utils as pb_utils

from python_backend import protocol
from python_backend.models.common import (
    error_response,
    internal_error_response,
    model_parameters,
    read_text,
    version_dir,
)
from python_backend.parameters import parse_parameters
from python_backend.tokenization import (
    RequestError,
    TokenizerInfo,
    WindowEncoder,
    resolve_window_params,
)

OUTPUT_NAMES = (
    protocol.INPUT_IDS,
    protocol.ATTENTION_MASK,
    protocol.TOKEN_TYPE_IDS,
    protocol.OFFSETS,
    protocol.WORD_IDS,
    protocol.CANDIDATE_MASK,
    protocol.NUM_WINDOWS,
    protocol.WINDOW_START,
)


class TritonPythonModel:
    """Tokenize one request at a time into at most `window_limit` windows."""

    def initialize(self, args: dict) -> None:
        self.logger = pb_utils.Logger
        parameters = model_parameters(args)
        cls_token_id = parameters.get("cls_token_id", "")
        info = TokenizerInfo(
            model_max_length=int(parameters["model_max_length"]),
            cls_token_id=int(cls_token_id) if cls_token_id else None,
            pad_token_id=int(parameters["pad_token_id"]),
            input_names=tuple(parameters["input_names"].split(",")),
        )
        self.encoder = WindowEncoder.from_files(
            version_dir(args) / "tokenizer.json", info
        )
        self.window_batch_size = int(parameters["window_batch_size"])
        self.pad_to_multiple_of = int(parameters.get("pad_to_multiple_of", "1"))
        self.logger.log_info(
            f"tokenizer loaded: model_max_length={info.model_max_length}, "
            f"window_batch_size={self.window_batch_size}"
        )

    def execute(self, requests: list) -> list:
        return [self._respond(request) for request in requests]

    def _respond(self, request) -> pb_utils.InferenceResponse:
        try:
            tensors = self._tokenize(request)
        except RequestError as error:
            return error_response(error)
        except BaseException as error:  # noqa: BLE001
            # The Rust tokenizer reports some failures as a panic, which is a
            # BaseException; one bad request must not take the stub down.
            self.logger.log_error(
                f"tokenization failed: {type(error).__name__}: {error}"
            )
            return internal_error_response(f"tokenization failed: {error}")
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(name, tensors[name])
                for name in OUTPUT_NAMES
                if name in tensors
            ]
        )

    def _tokenize(self, request) -> dict:
        question = read_text(request, protocol.QUESTION)
        context = read_text(request, protocol.CONTEXT)
        if not question.strip():
            raise RequestError("question", "question is empty; send a non-blank string")
        if not context.strip():
            raise RequestError("context", "context is empty; send a non-blank string")
        parameters = parse_parameters(request.parameters())
        window = resolve_window_params(parameters, self.encoder.info.model_max_length)
        encodings = self.encoder.encode(question, context, window)
        start = parameters.get("window_start", 0)
        limit = min(
            parameters.get("window_limit", self.window_batch_size),
            self.window_batch_size,
        )
        if start >= len(encodings):
            raise RequestError(
                "window_start",
                f"window_start={start} is past the last window; this context has "
                f"{len(encodings)} windows",
            )
        return self.encoder.window_tensors(
            encodings, start, limit, self.pad_to_multiple_of
        )
