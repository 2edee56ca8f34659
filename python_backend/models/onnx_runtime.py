"""Triton step 2 on the local server: run the ONNX model with ONNX Runtime.

The NVIDIA tritonserver image runs the same `model.onnx` with its native
`onnxruntime` backend instead. This Python-backend version exists because the
`nvidia-pytriton` wheel's tritonserver ships only the Python backend.

The dynamic batcher hands `execute` several requests whose windows may have
different lengths (the inputs allow ragged batches). They are padded to the
longest, run as one ONNX Runtime call, and split again.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from python_backend import protocol
from python_backend.batching import group_by_length
from python_backend.models.common import (
    internal_error_response,
    model_parameters,
    read_array,
    version_dir,
)
from python_backend.tokenization import RequestError


def session_options(parameters: dict[str, str]) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(parameters.get("intra_op_threads", "0"))
    options.inter_op_num_threads = int(parameters.get("inter_op_threads", "1"))
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads take CPU from the tokenizer, the server and the gateway.
    spinning = parameters.get("allow_spinning", "0")
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


class TritonPythonModel:
    """Run batches of windows through an ONNX Runtime session."""

    def initialize(self, args: dict) -> None:
        self.logger = pb_utils.Logger
        parameters = model_parameters(args)
        self.session = ort.InferenceSession(
            str(version_dir(args) / "model.onnx"),
            sess_options=session_options(parameters),
            providers=["CPUExecutionProvider"],
        )
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.pad_token_id = int(parameters.get("pad_token_id", "0"))
        self.max_length_growth = float(parameters.get("max_length_growth", "0.25"))
        self.rows_per_run = max(int(parameters.get("rows_per_run", "0")), 0) or 1 << 30
        # Limits that keep one malformed direct request from failing the
        # ONNX Runtime call of the whole dynamic batch; 0 means unchecked.
        self.model_max_length = int(parameters.get("model_max_length", "0"))
        self.vocab_size = int(parameters.get("vocab_size", "0"))
        self.type_vocab_size = int(parameters.get("type_vocab_size", "0"))
        self.logger.log_info(
            f"ONNX Runtime {ort.__version__} session ready, inputs {self.input_names}"
        )

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        batches = []
        for index, request in enumerate(requests):
            try:
                batches.append((index, self._read(request)))
            except RequestError as error:
                responses[index] = internal_error_response(error.message)
        if batches:
            self._run(batches, responses)
        return responses

    def _read(self, request) -> dict[str, np.ndarray]:
        arrays = {name: read_array(request, name) for name in self.input_names}
        shapes = {array.shape for array in arrays.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise RequestError(
                "inputs",
                f"inputs must be 2-D arrays of one shape, got {sorted(shapes)}",
            )
        rows, width = next(iter(shapes))
        if rows == 0 or width == 0:
            raise RequestError(
                "inputs", f"inputs must not be empty, got {rows}x{width}"
            )
        if self.model_max_length and width > self.model_max_length:
            raise RequestError(
                "inputs",
                f"windows of {width} tokens exceed the model maximum of "
                f"{self.model_max_length}",
            )
        _check_range(arrays, protocol.INPUT_IDS, self.vocab_size)
        _check_range(arrays, protocol.ATTENTION_MASK, 2)
        _check_range(arrays, protocol.TOKEN_TYPE_IDS, self.type_vocab_size)
        return arrays

    def _run(self, batches: list, responses: list) -> None:
        lengths = [arrays["input_ids"].shape[1] for _, arrays in batches]
        for group in group_by_length(batches, lengths, self.max_length_growth):
            self._run_group(group, responses)

    def _run_group(self, batches: list, responses: list) -> None:
        length = max(arrays["input_ids"].shape[1] for _, arrays in batches)
        feed = {
            name: np.concatenate(
                [_pad(arrays[name], length, self._fill(name)) for _, arrays in batches]
            ).astype(np.int64, copy=False)
            for name in self.input_names
        }
        try:
            start_logits, end_logits = self._run_rows(feed)
        except Exception as error:  # noqa: BLE001 - reported per request below
            self.logger.log_error(f"ONNX Runtime failed: {error}")
            for index, _ in batches:
                responses[index] = internal_error_response(
                    f"model step failed: {error}"
                )
            return
        row = 0
        for index, arrays in batches:
            rows, width = arrays["input_ids"].shape
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(
                        protocol.START_LOGITS, start_logits[row : row + rows, :width]
                    ),
                    pb_utils.Tensor(
                        protocol.END_LOGITS, end_logits[row : row + rows, :width]
                    ),
                ]
            )
            row += rows

    def _run_rows(self, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Run the batch `rows_per_run` windows at a time, each slice without padding.

        On a CPU one window per ONNX Runtime call costs the least per window
        (see docs/benchmarks.md), and a slice cut to its own longest window
        spends nothing on padding. Positions cut off get logits of 0, which
        the postprocessing step never reads because their attention mask is 0.
        """
        total, width = feed[protocol.INPUT_IDS].shape
        start_parts, end_parts = [], []
        for first in range(0, total, self.rows_per_run):
            part = {
                name: array[first : first + self.rows_per_run]
                for name, array in feed.items()
            }
            used = np.flatnonzero(part[protocol.ATTENTION_MASK].any(axis=0))
            length = int(used[-1]) + 1 if used.size else width
            part = {name: array[:, :length] for name, array in part.items()}
            start_logits, end_logits = self.session.run(
                [protocol.START_LOGITS, protocol.END_LOGITS], part
            )
            padding = ((0, 0), (0, width - length))
            start_parts.append(np.pad(start_logits, padding))
            end_parts.append(np.pad(end_logits, padding))
        return np.concatenate(start_parts), np.concatenate(end_parts)

    def _fill(self, name: str) -> int:
        return self.pad_token_id if name == protocol.INPUT_IDS else 0


def _pad(array: np.ndarray, length: int, fill: int) -> np.ndarray:
    if array.shape[1] == length:
        return array
    padding = np.full((array.shape[0], length - array.shape[1]), fill, array.dtype)
    return np.concatenate([array, padding], axis=1)


def _check_range(arrays: dict[str, np.ndarray], name: str, limit: int) -> None:
    array = arrays.get(name)
    if array is None or limit <= 0:
        return
    if array.min() < 0 or array.max() >= limit:
        raise RequestError(
            name,
            f"{name} values must be from 0 to {limit - 1}, got {array.min()} to {array.max()}",
        )
